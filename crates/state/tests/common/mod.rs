#![allow(dead_code)]
//! Test harness: an in-memory chain with a CA and four institutions.

use medledger_state::{execute_block, genesis_root, genesis_writes, nonce_of, BlockEnv, MemState};
use medledger_types::IdentityOp;
use medledger_types::{
    genesis::GenesisInstitution, patient_pseudonym, CredentialSpec, Genesis, Hash, Keypair, Operation, Outcome,
    Receipt, Role, Transaction, Tx,
};

pub const T0: u64 = 1_700_000_000_000;
pub const DAY: u64 = 86_400_000;

pub struct Chain {
    pub genesis: Genesis,
    pub ca: Keypair,
    pub admins: Vec<Keypair>,
    pub state: MemState,
    pub root: Hash,
    pub height: u64,
    pub now: u64,
}

impl Chain {
    pub fn new() -> Chain {
        let ca = Keypair::from_seed(1000);
        let admins: Vec<Keypair> = (0..4).map(|i| Keypair::from_seed(2000 + i)).collect();
        let genesis = Genesis {
            chain_id: "test-chain".into(),
            genesis_time_ms: T0,
            ca_key: ca.public(),
            institutions: (0..4)
                .map(|i| GenesisInstitution {
                    id: format!("hospital-{i}"),
                    name: format!("Hospital {i}"),
                    validator_key: Keypair::from_seed(3000 + i as u64).public(),
                    admin_key: admins[i].public(),
                    p2p_address: format!("127.0.0.1:{}", 7000 + i),
                    api_address: format!("127.0.0.1:{}", 8000 + i),
                })
                .collect(),
        };
        let mut state = MemState::default();
        state.apply(&genesis_writes(&genesis));
        let root = genesis_root(&genesis);
        Chain { genesis, ca, admins, state, root, height: 0, now: T0 }
    }

    pub fn tx(&self, key: &Keypair, op: Operation) -> Tx {
        let nonce = nonce_of(&self.state, &key.public());
        Tx::sign(Transaction { chain_id: "test-chain".into(), signer: key.public(), nonce, op }, key)
    }

    pub fn block(&mut self, txs: Vec<Tx>) -> Vec<Receipt> {
        self.height += 1;
        self.now += 1000;
        let env = BlockEnv {
            chain_id: self.genesis.chain_id.clone(),
            height: self.height,
            timestamp_ms: self.now,
            proposer: self.genesis.institutions[0].validator_key,
        };
        let ex = execute_block(&self.state, &env, &txs);
        self.state.apply(&ex.writes);
        self.root = ex.state_root;
        ex.receipts
    }

    pub fn one(&mut self, key: &Keypair, op: Operation) -> Outcome {
        let tx = self.tx(key, op);
        self.block(vec![tx]).remove(0).outcome
    }

    pub fn issue(&mut self, role: Role, inst: usize, seed: u64) -> Keypair {
        let k = Keypair::from_seed(seed);
        let ca = self.ca.clone();
        let out = self.one(
            &ca,
            Operation::Identity(IdentityOp::IssueCredential {
                spec: CredentialSpec {
                    subject: k.public(),
                    role,
                    institution: format!("hospital-{inst}"),
                    display_name: format!("{} {seed}", role.name()),
                    valid_from_ms: T0,
                    valid_until_ms: T0 + 365 * DAY,
                },
            }),
        );
        assert!(matches!(out, Outcome::Applied { .. }), "{out:?}");
        k
    }

    pub fn patient(&mut self, seed: u64) -> Keypair {
        let k = Keypair::from_seed(seed);
        let admin = self.admins[0].clone();
        let out = self.one(
            &admin,
            Operation::Identity(IdentityOp::RegisterPatient {
                subject: k.public(),
                pseudonym: patient_pseudonym(&[9; 32], &format!("N{seed}"), &format!("M{seed}")),
                valid_until_ms: T0 + 365 * DAY,
            }),
        );
        assert!(matches!(out, Outcome::Applied { .. }), "{out:?}");
        k
    }
}

pub fn applied(o: &Outcome) {
    assert!(matches!(o, Outcome::Applied { .. }), "{o:?}");
}

pub fn rejected(o: &Outcome) -> medledger_types::RejectCode {
    match o {
        Outcome::Rejected { code, .. } => *code,
        o => panic!("expected a rejection, got {o:?}"),
    }
}

/// A sealed note addressed to `readers`. The state machine checks only who can open a note,
/// never its cryptography, so the ciphertext and wrapped keys here are filler.
pub fn sealed_for(readers: &[medledger_types::PublicKey]) -> medledger_types::SealedNote {
    medledger_types::SealedNote {
        ciphertext: vec![0x5e; 48],
        recipients: readers
            .iter()
            .map(|r| medledger_types::NoteKey { recipient: *r, wrapped: [0x3c; medledger_types::note::NOTE_KEY_BYTES] })
            .collect(),
    }
}

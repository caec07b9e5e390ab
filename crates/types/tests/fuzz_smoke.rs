//! A short, deterministic smoke run of the fuzz targets: valid encodings mutated by bit flips,
//! truncations, insertions and splices. The full coverage-guided runs use `cargo fuzz` (see
//! `fuzz/README.md`).

use medledger_types::fuzz::{block_decode, receipt_decode, tx_decode};
use medledger_types::IdentityOp;
use medledger_types::{Block, Canonical, Event, Hash, Keypair, Operation, Outcome, Receipt, Transaction, Tx};

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(5) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => v.truncate(rng.below(v.len())),
            2 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
            3 if !v.is_empty() => {
                // Overwrite a 4-byte window (often a length prefix) with an extreme value.
                let i = rng.below(v.len());
                for (k, b) in [0xff, 0xff, 0xff, 0xf0].iter().enumerate() {
                    if i + k < v.len() {
                        v[i + k] = *b;
                    }
                }
            }
            _ => {
                let i = rng.below(v.len() + 1);
                let j = rng.below(seed.len() + 1);
                v.splice(i..i, seed[j..].iter().copied().take(16));
            }
        }
    }
    v
}

/// Seed inputs: transactions, blocks and receipts.
type Seeds = (Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<Vec<u8>>);

fn seeds() -> Seeds {
    let k = Keypair::from_seed(5);
    let txs: Vec<Tx> = (0..3u64)
        .map(|n| {
            Tx::sign(
                Transaction {
                    chain_id: "fuzz".into(),
                    signer: k.public(),
                    nonce: n,
                    op: Operation::Identity(IdentityOp::RegisterPatient {
                        subject: k.public(),
                        pseudonym: Hash([n as u8; 32]),
                        valid_until_ms: 9,
                    }),
                },
                &k,
            )
        })
        .collect();
    let block = Block::new(3, Hash([1; 32]), 77, k.public(), Hash([2; 32]), txs.clone());
    let receipt = Receipt {
        tx_id: txs[0].id(),
        height: 3,
        index: 0,
        outcome: Outcome::Applied { events: vec![Event::new("e").with("k", "v")] },
    };
    (txs.iter().map(|t| t.raw().to_vec()).collect(), vec![block.encode()], vec![receipt.to_bytes()])
}

#[test]
fn fuzz_targets_survive_mutated_inputs() {
    let (tx_seeds, block_seeds, receipt_seeds) = seeds();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for s in &tx_seeds {
        tx_decode(s);
    }
    for s in &block_seeds {
        block_decode(s);
    }
    let mut accepted = 0;
    for _ in 0..20_000 {
        let pick = rng.below(tx_seeds.len());
        let m = mutate(&mut rng, &tx_seeds[pick]);
        if Tx::decode(&m).is_ok() {
            accepted += 1;
        }
        tx_decode(&m);
        receipt_decode(&mutate(&mut rng, &receipt_seeds[0]));
    }
    // Mutations inside fixed-width fields still decode: the smoke reaches past the first check.
    assert!(accepted > 100, "only {accepted} mutated transactions decoded");
    for _ in 0..3_000 {
        block_decode(&mutate(&mut rng, &block_seeds[0]));
    }
    for len in 0..512 {
        let junk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        tx_decode(&junk);
        block_decode(&junk);
        receipt_decode(&junk);
    }
}

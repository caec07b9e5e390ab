//! Remote monitoring, the node's side: readings signed by registered devices are checked,
//! scored and stored encrypted in this institution's vault; the chain gets one anchor per
//! device per interval (the Merkle root of the readings' digests), an alarm per cause, and an
//! escalation when nobody acknowledges an alarm in time.
//!
//! Every reading is hostile until verified: its signature (by the device key registered on
//! chain), the device (registered, not revoked, monitored here), the Observation (LOINC code,
//! UCUM unit, a physiological value, not from the future), and that it is new. Only then does
//! anything change (vault, pending anchors, the latest values).
//!
//! Alarms are edge-triggered: NEWS2 raises one when the patient's risk rises to medium or high,
//! a rule when it starts to hold; a patient whose readings stay high raises no flood.

use crate::error::ServiceError;
use crate::records::RecordService;
use medledger_state::care::monitoring::{self as sm, Device, Monitoring};
use medledger_state::store::StateRead;
use medledger_types::care::alarm::{self, Cause, Rule};
use medledger_types::care::news2::Risk;
use medledger_types::care::vitals::{self, Reading, MAX_READING_BYTES};
use medledger_types::care::CareOp;
use medledger_types::hash::{domain, tagged};
use medledger_types::{ErrorCode, Hash, Operation, PublicKey};
use medledger_vault::envelope::{self, DataKey};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Readings of one device waiting for an anchor: (time, digest).
type Batch = Vec<(u64, Hash)>;

/// One device's reading key for a few seconds: its readings are sealed under it, each bound to
/// its own digest, and it is wrapped for the readers once (HPKE costs two X25519 operations per
/// reader, more than everything else a reading costs).
struct KeyEpoch {
    id: Hash,
    key: DataKey,
    readers: [PublicKey; 2],
    since_ms: u64,
    /// Readings sealed under it so far (a bound, not a count: reservations may overshoot).
    sealed: AtomicU32,
}

/// Readings may carry a time at most this far ahead of the node's clock.
pub const MAX_SKEW_MS: u64 = 5 * 60 * 1000;
/// How often each device's pending readings are anchored.
pub const ANCHOR_EVERY_MS: u64 = 10_000;
/// Most readings one anchor covers; a busier device is anchored more often.
pub const MAX_PENDING_PER_DEVICE: usize = 10_000;
/// Recent reading digests remembered to refuse duplicates (beyond the anchored intervals).
pub const MAX_SEEN: usize = 200_000;
/// Latest readings kept per patient, to complete NEWS2 sets.
pub const MAX_LATEST: usize = 32;
/// Devices and patients followed at once (bounds the node's memory).
pub const MAX_FOLLOWED: usize = 100_000;
/// How long one device's readings share a data key.
pub const KEY_EPOCH_MS: u64 = ANCHOR_EVERY_MS;
/// Most readings sealed under one data key.
pub const MAX_READINGS_PER_KEY: u32 = 100_000;

/// One reading as a device sends it.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct SignedReading {
    /// The device's ed25519 public key, hex.
    #[schema(value_type = String, pattern = "^[0-9a-fA-F]{64}$")]
    pub device_key: String,
    /// One FHIR R4 Observation, as JSON text (its exact bytes are signed and digested).
    #[schema(max_length = 8192)]
    pub observation: String,
    /// The device key's signature over `vitals::reading_message(chain_id, observation)`, hex.
    #[schema(value_type = String, pattern = "^[0-9a-fA-F]{128}$")]
    pub signature: String,
}

/// What the node did with a reading.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReadingReceipt {
    /// The digest the device's next anchor commits to.
    pub digest: Hash,
    pub device: Hash,
    /// The NEWS2 total and risk of the set this reading completes, if complete.
    pub news2_total: Option<u32>,
    pub news2_risk: Option<String>,
    /// Causes of the alarms this reading raised (sent to the chain).
    pub alarms: Vec<String>,
}

/// One recent reading, as the patient and the doctors who watch it see it.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReadingValue {
    /// The NEWS2 parameter it fills: `pulse`, `respiratory_rate`, `spo2`, `temperature`,
    /// `systolic_bp` (with the diastolic in `text`), `consciousness` or `on_oxygen`.
    pub parameter: String,
    /// The value with its unit, as charted (`112 /min`, `124/78 mm[Hg]`, `A`, `on air`).
    pub text: String,
    pub effective_ms: u64,
}

/// A patient's live readings: the latest this node received (newest first, at most
/// [`MAX_LATEST`]) and the NEWS2 score of the latest complete set. Held in memory; the vault
/// keeps each reading sealed, and a restarted node opens the latest again.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct LiveReadings {
    pub patient: Hash,
    pub readings: Vec<ReadingValue>,
    #[schema(value_type = Option<Object>)]
    pub news2: Option<medledger_types::care::news2::Score>,
}

#[derive(Default)]
struct Inner {
    /// Readings since the device's last anchor: (time, digest).
    pending: HashMap<Hash, Batch>,
    /// When each device's pending batch started.
    pending_since: HashMap<Hash, u64>,
    /// The end of the last interval sent to the chain per device (anchors must not overlap).
    anchored_until: HashMap<Hash, u64>,
    seen: HashSet<Hash>,
    seen_order: VecDeque<Hash>,
    /// Per device, the times of readings being written to the vault right now: an anchor
    /// covers only readings before the earliest of them.
    storing: HashMap<Hash, Vec<u64>>,
    /// Latest readings per patient.
    latest: HashMap<Hash, VecDeque<Reading>>,
    /// The NEWS2 risk last seen per patient, and the rules holding (for edge triggering).
    risk: HashMap<Hash, Risk>,
    holding: HashMap<Hash, HashSet<String>>,
    /// Alarms to escalate when due: those this node raised, and after a restart those of its
    /// institution on chain not known acknowledged or escalated yet.
    open_alarms: HashSet<Hash>,
    /// Each device's current reading key.
    epochs: HashMap<Hash, Arc<KeyEpoch>>,
}

impl Inner {
    /// Keeps `reading` among the patient's latest (at most [`MAX_LATEST`]); false if the
    /// patient is not followed and [`MAX_FOLLOWED`] are.
    fn remember(&mut self, patient: Hash, reading: Reading) -> bool {
        if self.latest.len() >= MAX_FOLLOWED && !self.latest.contains_key(&patient) {
            return false;
        }
        let latest = self.latest.entry(patient).or_default();
        latest.push_back(reading);
        while latest.len() > MAX_LATEST {
            latest.pop_front();
        }
        true
    }
}

/// The monitoring state of one node. After a restart, [`Monitor::recover`] rebuilds it from the
/// vault's reading log and the chain: the pending anchors, the latest values (NEWS2 sets), the
/// edge-trigger memory, and the alarms to escalate.
#[derive(Default)]
pub struct Monitor {
    inner: Mutex<Inner>,
}

fn refuse(code: ErrorCode, message: impl Into<String>) -> ServiceError {
    ServiceError::new(code, message)
}

impl Monitor {
    /// Checks, scores and stores one reading; queues its digest for the device's next anchor
    /// and raises the alarms it causes.
    pub fn ingest(&self, svc: &RecordService, req: &SignedReading) -> Result<ReadingReceipt, ServiceError> {
        let bytes = req.observation.as_bytes();
        if bytes.len() > MAX_READING_BYTES {
            return Err(refuse(
                ErrorCode::InvalidArgument,
                format!("observation: {} bytes, above the limit of {MAX_READING_BYTES}", bytes.len()),
            ));
        }
        let key = PublicKey::from_hex(&req.device_key)
            .map_err(|e| refuse(ErrorCode::Malformed, format!("device_key: {e}")))?;
        let sig = crate::records::signature(&req.signature)?;
        let msg = vitals::reading_message(&svc.chain.genesis.chain_id, bytes);
        if !medledger_types::keys::verify(&key, domain::READING_SIGNATURE, &msg, &sig) {
            return Err(refuse(
                ErrorCode::BadSignature,
                "the reading's signature does not verify under the device key",
            ));
        }
        let snap = svc.chain.store.snapshot().map_err(ServiceError::internal)?;
        let next = svc.chain.tip().height + 1;
        let device = sm::device_of_key(&snap, &key)
            .ok_or_else(|| refuse(ErrorCode::NotPermitted, "unknown device: no device is registered with this key"))?;
        if !device.active_at(next) {
            return Err(refuse(ErrorCode::NotPermitted, format!("device {} was revoked", device.id)));
        }
        if device.institution != svc.institution {
            return Err(refuse(
                ErrorCode::WrongHolder,
                format!("device {} is monitored by `{}`; send its readings there", device.id, device.institution),
            ));
        }
        let json: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| refuse(ErrorCode::InvalidArgument, format!("the reading is not JSON: {e}")))?;
        let reading =
            vitals::parse_observation(&json).map_err(|e| refuse(ErrorCode::InvalidArgument, e.to_string()))?;
        vitals::check_not_future(&reading, svc.chain.now_ms(), MAX_SKEW_MS)
            .map_err(|e| refuse(ErrorCode::InvalidArgument, e.to_string()))?;
        let digest = vitals::reading_digest(&device.id, bytes);
        let monitoring = sm::monitoring(&snap, &device.patient);
        // Sealed and wrapped before the lock, written to the vault outside it: readings of
        // many devices are written at once. Under the lock the reading is only reserved: its
        // digest (no second copy passes) and its time (no anchor of the device goes past it
        // until it is stored, see `tick`).
        // Checked once before the key epoch (which may write a new key to the vault), so that a
        // resent reading writes nothing, and again when the reading is reserved.
        Self::check_new(&self.inner.lock(), &device, &digest, reading.effective_ms)?;
        // Each device within its rate (the node's requester limit), also before any write.
        svc.guard.admit(&key, digest, svc.chain.now_ms())?;
        let epoch = self.key_epoch(svc, &snap, &device, svc.chain.now_ms())?;
        svc.sound()?;
        let sealed = envelope::seal(&epoch.key, bytes, &envelope::reading_context(&device.id, &digest));
        {
            let mut g = self.inner.lock();
            Self::check_new(&g, &device, &digest, reading.effective_ms)?;
            g.seen.insert(digest);
            g.storing.entry(device.id).or_default().push(reading.effective_ms);
        }
        let stored = svc.vault.put_reading(&device.id, &digest, reading.effective_ms, &epoch.id, &sealed.0);
        {
            let mut g = self.inner.lock();
            if let Some(times) = g.storing.get_mut(&device.id) {
                if let Some(i) = times.iter().position(|t| *t == reading.effective_ms) {
                    times.swap_remove(i);
                }
                if times.is_empty() {
                    g.storing.remove(&device.id);
                }
            }
            if let Err(e) = stored {
                // Not stored: the device may send it again.
                g.seen.remove(&digest);
                return Err(ServiceError::internal(e));
            }
            g.seen_order.push_back(digest);
            while g.seen_order.len() > MAX_SEEN {
                if let Some(old) = g.seen_order.pop_front() {
                    g.seen.remove(&old);
                }
            }
            let now = svc.chain.now_ms();
            g.pending_since.entry(device.id).or_insert(now);
            g.pending.entry(device.id).or_default().push((reading.effective_ms, digest));
            // The latest values complete NEWS2 sets, for monitored patients only.
            if monitoring.is_some() {
                g.remember(device.patient, reading);
            }
        }
        let (score, causes) = self.assess(&device, &reading, monitoring.as_ref());
        let mut alarms = Vec::new();
        if monitoring.is_some() {
            for cause in causes {
                let text = cause.text();
                let alarm_id = alarm_id(&digest, &cause);
                let op = CareOp::RaiseAlarm { alarm_id, device_id: device.id, reading: digest, cause: text.clone() };
                match svc.submit_service_op(Operation::Care(op)) {
                    Ok(_) => {
                        self.inner.lock().open_alarms.insert(alarm_id);
                        alarms.push(text);
                    }
                    Err(e) => {
                        // Not raised: the edge is not kept, so the next reading warranting it
                        // raises it (a missed alarm is worse than a second one).
                        self.unset(&device.patient, &cause);
                        tracing::warn!("alarm `{text}` for device {} not raised: {e}", device.id)
                    }
                }
            }
        }
        Ok(ReadingReceipt {
            digest,
            device: device.id,
            news2_total: score.map(|s| u32::from(s.0)),
            news2_risk: score.map(|s| s.1.as_str().to_string()),
            alarms,
        })
    }

    /// The patient's live readings under monitoring `m` (the caller checked who may see them).
    pub fn live(&self, m: &Monitoring) -> LiveReadings {
        let latest: Vec<Reading> =
            self.inner.lock().latest.get(&m.patient).map(|l| l.iter().copied().collect()).unwrap_or_default();
        let news2 = vitals::observation_set(&latest, m.spo2_scale as u8).and_then(|o| o.score().ok());
        let mut readings: Vec<ReadingValue> = latest
            .iter()
            .map(|r| ReadingValue {
                parameter: r.vital.kind().to_string(),
                text: r.vital.text(),
                effective_ms: r.effective_ms,
            })
            .collect();
        readings.reverse();
        LiveReadings { patient: m.patient, readings, news2 }
    }

    /// Refuses a reading already received, one not after the device's anchored interval, and a
    /// new device when the node follows too many.
    fn check_new(g: &Inner, device: &Device, digest: &Hash, effective_ms: u64) -> Result<(), ServiceError> {
        if g.seen.contains(digest) {
            return Err(refuse(ErrorCode::Duplicate, "this reading was already received"));
        }
        let floor = g.anchored_until.get(&device.id).copied().max(device.last_anchor_ms);
        if floor.is_some_and(|f| effective_ms <= f) {
            return Err(refuse(
                ErrorCode::Duplicate,
                "the reading is not after the device's last anchored interval (resent, or too late)",
            ));
        }
        if g.pending.len() >= MAX_FOLLOWED && !g.pending.contains_key(&device.id) {
            return Err(refuse(ErrorCode::Unavailable, "this node follows too many devices; retry later"));
        }
        Ok(())
    }

    /// The device's current key epoch: reused while it is young, under its limit and wrapped
    /// for today's readers (the institution and the patient's current key); otherwise a new
    /// one, wrapped and written to the vault before any reading is sealed under it.
    fn key_epoch(
        &self,
        svc: &RecordService,
        snap: &dyn StateRead,
        device: &Device,
        now: u64,
    ) -> Result<Arc<KeyEpoch>, ServiceError> {
        let patient = medledger_state::identity::patient_key(snap, &device.patient)
            .ok_or_else(|| refuse(ErrorCode::NotFound, "the device's patient has no key"))?;
        let readers = [svc.institution_key.public(), patient];
        if let Some(e) = self.inner.lock().epochs.get(&device.id) {
            if e.readers == readers
                && now.saturating_sub(e.since_ms) < KEY_EPOCH_MS
                && e.sealed.fetch_add(1, Ordering::Relaxed) < MAX_READINGS_PER_KEY
            {
                return Ok(e.clone());
            }
        }
        let mut id = [0u8; 32];
        rand::Rng::fill_bytes(&mut rand::rng(), &mut id);
        let epoch = KeyEpoch { id: Hash(id), key: DataKey::generate(), readers, since_ms: now, sealed: 1.into() };
        let ctx = envelope::reading_key_context(&device.id, &epoch.id);
        let mut keys = Vec::with_capacity(readers.len());
        for pk in readers {
            keys.push((pk, envelope::wrap(&epoch.key, &pk, &ctx).map_err(ServiceError::internal)?));
        }
        svc.sound()?;
        svc.vault.put_reading_key(&device.id, &epoch.id, &keys).map_err(ServiceError::internal)?;
        let epoch = Arc::new(epoch);
        let mut g = self.inner.lock();
        if g.epochs.len() < MAX_FOLLOWED || g.epochs.contains_key(&device.id) {
            g.epochs.insert(device.id, epoch.clone());
        }
        Ok(epoch)
    }

    /// The NEWS2 score of the set this reading completes (total, risk), and the alarm causes
    /// that start with it.
    fn assess(&self, device: &Device, reading: &Reading, m: Option<&Monitoring>) -> (Option<(u8, Risk)>, Vec<Cause>) {
        let Some(m) = m else { return (None, vec![]) };
        let rules: Vec<Rule> = m.rules.iter().filter_map(|r| r.rule().ok()).collect();
        let mut g = self.inner.lock();
        let latest: Vec<Reading> =
            g.latest.get(&device.patient).map(|l| l.iter().copied().collect()).unwrap_or_default();
        let score = vitals::observation_set(&latest, m.spo2_scale as u8).and_then(|o| o.score().ok());
        let all = alarm::causes(score.as_ref(), &reading.vital, &rules);
        // The rules holding for this reading (a rule cause does not depend on the score).
        let holding_now: HashSet<String> =
            all.iter().filter_map(|c| if let Cause::Rule(_, r) = c { Some(r.to_string()) } else { None }).collect();
        let mut causes = Vec::new();
        for c in all {
            match &c {
                Cause::Risk(r) => {
                    let before = g.risk.get(&device.patient).copied().unwrap_or(Risk::Low);
                    if *r > before {
                        causes.push(c);
                    }
                }
                Cause::Rule(_, rule) => {
                    if g.holding.entry(device.patient).or_default().insert(rule.to_string()) {
                        causes.push(c);
                    }
                }
            }
        }
        if let Some(s) = &score {
            g.risk.insert(device.patient, s.risk);
        }
        // A rule that no longer holds for this parameter may fire again later.
        if let Some(h) = g.holding.get_mut(&device.patient) {
            h.retain(|r| {
                let same_param = rules.iter().any(|x| x.to_string() == *r && x.param.of(&reading.vital).is_some());
                !same_param || holding_now.contains(r)
            });
        }
        (score.map(|s| (s.total, s.risk)), causes)
    }

    /// After a restart: the readings the vault holds that no anchor covers (none on chain, none
    /// waiting in the mempool, which its log restored) are queued for their device's next
    /// anchor again, so a reading this node acknowledged is anchored even across a crash.
    /// Devices revoked meanwhile cannot be anchored any more; their readings stay in the vault.
    /// Then restores the latest values, the edge-trigger memory and the alarms to escalate
    /// (`restore`). Returns how many readings were queued. Call it once, before
    /// readings are taken.
    pub fn recover(&self, svc: &RecordService) -> Result<usize, ServiceError> {
        let snap = svc.chain.store.snapshot().map_err(ServiceError::internal)?;
        let next = svc.chain.tip().height + 1;
        // Anchors this node's service key has waiting in the mempool: their ends are floors too.
        let mut waiting: HashMap<Hash, u64> = HashMap::new();
        // And the alarms it raised, and the escalations it sent, that are not in a block yet.
        let (mut raised, mut escalating) = (HashSet::new(), HashSet::new());
        for tx in svc.chain.with_mempool(|m| m.pending_of(&svc.service_key())) {
            match &tx.body().op {
                Operation::Care(CareOp::AnchorReadings { device_id, last_ms, .. }) => {
                    let w = waiting.entry(*device_id).or_default();
                    *w = (*w).max(*last_ms);
                }
                Operation::Care(CareOp::RaiseAlarm { alarm_id, .. }) => {
                    raised.insert(*alarm_id);
                }
                Operation::Care(CareOp::EscalateAlarm { alarm_id }) => {
                    escalating.insert(*alarm_id);
                }
                _ => {}
            }
        }
        let now = svc.chain.now_ms();
        let mut queued = 0;
        let mut ours = Vec::new();
        for id in svc.vault.reading_devices(MAX_FOLLOWED).map_err(ServiceError::internal)? {
            let Some(device) = sm::device(&snap, &id) else { continue };
            if device.institution != svc.institution {
                continue;
            }
            ours.push(device.clone());
            if !device.active_at(next) {
                continue;
            }
            let floor = device.last_anchor_ms.max(waiting.get(&id).copied());
            let found = svc.vault.readings_after(&id, floor, MAX_PENDING_PER_DEVICE).map_err(ServiceError::internal)?;
            let mut g = self.inner.lock();
            if let Some(f) = floor {
                g.anchored_until.insert(id, f);
            }
            if found.is_empty() {
                continue;
            }
            queued += found.len();
            for (_, d) in &found {
                if g.seen.insert(*d) {
                    g.seen_order.push_back(*d);
                }
            }
            g.pending_since.entry(id).or_insert(now);
            g.pending.entry(id).or_default().extend(found);
        }
        if queued > 0 {
            tracing::info!("{queued} readings acknowledged before the restart are queued for anchoring again");
        }
        self.restore(svc, &snap, &ours, &raised, &escalating);
        Ok(queued)
    }

    /// After a restart, what only memory held before it: each monitored patient's latest
    /// readings (the last [`MAX_LATEST`] of each device), opened from the vault with the
    /// institution's key and scored again in time order through the edge-trigger memory,
    /// raising nothing; and this institution's alarms nobody has acknowledged or escalated (the
    /// last [`sm::MAX_ALARMS_LISTED`] on chain of each patient whose device has readings in this
    /// vault, and those `raised` and waiting in the mempool, less those whose escalation is
    /// `escalating` there), watched for escalation again.
    ///
    /// An edge is kept only where its alarm exists: a cause the replay finds whose alarm is
    /// neither on chain nor in the mempool (the node stopped between storing the reading and
    /// raising it, or the replay starts inside a run of high readings) is left unset, so the
    /// next reading that warrants it raises it. A missed alarm is worse than a second one.
    /// A reading that cannot be opened (its epoch's keys erased) is left out.
    fn restore(
        &self,
        svc: &RecordService,
        snap: &dyn StateRead,
        devices: &[Device],
        raised: &HashSet<Hash>,
        escalating: &HashSet<Hash>,
    ) {
        let mut monitored: HashMap<Hash, Option<Monitoring>> = HashMap::new();
        let mut by_patient: HashMap<Hash, Vec<(Reading, Hash, Device)>> = HashMap::new();
        for device in devices {
            if monitored.entry(device.patient).or_insert_with(|| sm::monitoring(snap, &device.patient)).is_none() {
                continue;
            }
            let found = match svc.vault.latest_readings(&device.id, MAX_LATEST) {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!("latest readings of device {} not restored: {e}", device.id);
                    continue;
                }
            };
            let mut keys: HashMap<Hash, DataKey> = HashMap::new();
            let readings = by_patient.entry(device.patient).or_default();
            for (_, digest) in found {
                match open_reading(svc, device, &digest, &mut keys) {
                    Ok(r) => readings.push((r, digest, device.clone())),
                    Err(e) => tracing::warn!("reading {digest} of device {} not restored: {e}", device.id),
                }
            }
        }
        let (mut replayed, mut unset) = (0, 0);
        for (patient, mut readings) in by_patient {
            let Some(Some(m)) = monitored.get(&patient) else { continue };
            readings.sort_by_key(|(r, _, _)| r.effective_ms);
            let skip = readings.len().saturating_sub(MAX_LATEST);
            for (reading, digest, device) in readings.into_iter().skip(skip) {
                if !self.inner.lock().remember(patient, reading) {
                    break;
                }
                replayed += 1;
                let (_, causes) = self.assess(&device, &reading, Some(m));
                for cause in causes {
                    let id = alarm_id(&digest, &cause);
                    if sm::alarm(snap, &id).is_none() && !raised.contains(&id) {
                        self.unset(&patient, &cause);
                        unset += 1;
                    }
                }
            }
        }
        // Every patient of this institution's devices with readings in this vault (an alarm
        // names a stored reading), monitored now or not.
        let mut watched = HashSet::new();
        for patient in monitored.keys() {
            for a in sm::alarms_of_patient(snap, patient) {
                if a.institution == svc.institution && a.acknowledged_by.is_none() && a.escalated_to.is_none() {
                    watched.insert(a.id);
                }
            }
        }
        watched.extend(raised.iter().copied());
        watched.retain(|id| !escalating.contains(id));
        let open = watched.len();
        self.inner.lock().open_alarms.extend(watched);
        tracing::info!(
            "monitoring restored: {replayed} latest readings scored again ({unset} alarm edges left unset, \
             their alarms not found), {open} alarms not acknowledged watched for escalation"
        );
    }

    /// Forgets that `cause` holds for `patient`, so that the next reading warranting it raises it.
    fn unset(&self, patient: &Hash, cause: &Cause) {
        let mut g = self.inner.lock();
        match cause {
            Cause::Risk(_) => {
                g.risk.insert(*patient, Risk::Low);
            }
            Cause::Rule(_, rule) => {
                if let Some(h) = g.holding.get_mut(patient) {
                    h.remove(&rule.to_string());
                }
            }
        }
    }

    /// Anchors every device whose batch is due, and escalates this node's overdue alarms.
    /// Run every second or so; on an error the work stays for the next run.
    pub fn tick(&self, svc: &RecordService) {
        let now = svc.chain.now_ms();
        // Taken under one lock with the device's new floor, so that no reading at or before
        // the batch's end is accepted while its anchor is on the way (the next anchor could not
        // start after this one's end, and the chain would refuse it).
        let due: Vec<(Hash, Batch, Option<u64>)> = {
            let mut g = self.inner.lock();
            let ids: Vec<Hash> = g
                .pending
                .iter()
                .filter(|(id, v)| {
                    !v.is_empty()
                        && (v.len() >= MAX_PENDING_PER_DEVICE
                            || g.pending_since.get(*id).is_some_and(|t| now.saturating_sub(*t) >= ANCHOR_EVERY_MS))
                })
                .map(|(id, _)| *id)
                .collect();
            let mut out = Vec::new();
            for id in ids {
                let Some(all) = g.pending.remove(&id) else { continue };
                let since = g.pending_since.remove(&id).unwrap_or(now);
                // Only readings before the earliest one still being written to the vault.
                let cut = g.storing.get(&id).and_then(|t| t.iter().min().copied());
                let (batch, later): (Vec<_>, Vec<_>) = all.into_iter().partition(|(ms, _)| cut.is_none_or(|c| *ms < c));
                if !later.is_empty() {
                    g.pending.insert(id, later);
                    g.pending_since.insert(id, since);
                }
                let Some(last_ms) = batch.iter().map(|(ms, _)| *ms).max() else { continue };
                let before = g.anchored_until.insert(id, last_ms);
                out.push((id, batch, before));
            }
            out
        };
        // What the chain says of each device now: an anchor it cannot take would be retried
        // forever (a revoked device; readings an anchor from before a restart already covers).
        let snap = if due.is_empty() { None } else { svc.chain.store.snapshot().ok() };
        let next = svc.chain.tip().height + 1;
        for (device_id, mut batch, before) in due {
            if let Some(d) = snap.as_ref().and_then(|s| sm::device(s, &device_id)) {
                if !d.active_at(next) {
                    tracing::warn!(
                        "device {device_id} was revoked: {} readings stay unanchored in the vault",
                        batch.len()
                    );
                    continue;
                }
                batch.retain(|(ms, _)| d.last_anchor_ms.is_none_or(|last| *ms > last));
            }
            if batch.is_empty() {
                continue;
            }
            batch.sort();
            let first_ms = batch[0].0;
            let last_ms = batch[batch.len() - 1].0;
            let digests: Vec<[u8; 32]> = batch.iter().map(|(_, d)| d.0).collect();
            let root = medledger_types::merkle::root(&digests);
            let op = CareOp::AnchorReadings { device_id, first_ms, last_ms, count: batch.len() as u32, root };
            if let Err(e) = svc.submit_service_op(Operation::Care(op)) {
                tracing::warn!("anchor of device {device_id} deferred: {e}");
                let mut g = self.inner.lock();
                match before {
                    Some(b) => g.anchored_until.insert(device_id, b),
                    None => g.anchored_until.remove(&device_id),
                };
                g.pending.entry(device_id).or_default().extend(batch);
                g.pending_since.entry(device_id).or_insert(now);
            }
        }
        self.escalate(svc, now);
    }

    fn escalate(&self, svc: &RecordService, now: u64) {
        // Runs every tick: no snapshot unless this node has alarms to watch.
        let open: Vec<Hash> = self.inner.lock().open_alarms.iter().copied().collect();
        if open.is_empty() {
            return;
        }
        let Ok(snap) = svc.chain.store.snapshot() else { return };
        for id in open {
            let Some(a) = sm::alarm(&snap, &id) else { continue };
            if a.acknowledged_by.is_some() || a.escalated_to.is_some() {
                self.inner.lock().open_alarms.remove(&id);
                continue;
            }
            if now < a.escalate_at_ms || sm::on_call(&snap, &a.institution).is_none() {
                continue;
            }
            match svc.submit_service_op(Operation::Care(CareOp::EscalateAlarm { alarm_id: id })) {
                // Sent once: the chain refuses it anyway if the doctor acknowledges first.
                Ok(_) => {
                    self.inner.lock().open_alarms.remove(&id);
                }
                Err(e) => tracing::warn!("escalation of alarm {id} deferred: {e}"),
            }
        }
    }
}

/// The id of the alarm `cause` raises for the reading `digest`: the same on every node and
/// after a restart.
fn alarm_id(digest: &Hash, cause: &Cause) -> Hash {
    tagged(domain::ALARM_ID, &[&digest.0, cause.text().as_bytes()])
}

/// Opens a reading this node stored: its epoch's data key unwrapped with the institution's key
/// (once per epoch, kept in `keys`), then the reading, bound to its digest, parsed again.
fn open_reading(
    svc: &RecordService,
    device: &Device,
    digest: &Hash,
    keys: &mut HashMap<Hash, DataKey>,
) -> Result<Reading, String> {
    let stored = svc.vault.reading(&device.id, digest).map_err(|e| e.to_string())?.ok_or("not in the vault")?;
    let key = match keys.entry(stored.epoch) {
        std::collections::hash_map::Entry::Occupied(k) => k.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => {
            let me = svc.institution_key.public();
            let (_, wrapped) =
                stored.keys.iter().find(|(pk, _)| *pk == me).ok_or("its key is not wrapped for this institution")?;
            let ctx = envelope::reading_key_context(&device.id, &stored.epoch);
            e.insert(envelope::unwrap(wrapped, &svc.institution_key, &ctx).map_err(|e| e.to_string())?)
        }
    };
    let plain = envelope::open(key, &stored.sealed, &envelope::reading_context(&device.id, digest))
        .map_err(|e| e.to_string())?;
    let json: serde_json::Value = serde_json::from_slice(&plain).map_err(|e| e.to_string())?;
    vitals::parse_observation(&json).map_err(|e| e.to_string())
}

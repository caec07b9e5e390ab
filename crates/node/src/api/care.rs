//! Care namespace: telemedicine referrals (FHIR ServiceRequest and Task) as the chain records
//! them, listed per patient, per institution (inbox and outbox) and per doctor, and the
//! regulator's statistics per institution pair; remote monitoring's devices, settings and
//! alarms per patient, and alarms per doctor.
//!
//! Referrals are written as ordinary transactions (`POST /v1/txs`); every read here takes a
//! signed caller and answers through the referral rules of `visibility.rs`: a list shows only
//! the referrals the caller may see.

use super::*;
use medledger_state::care::monitoring::{self as sm, Alarm, Device, Monitoring};
use medledger_state::care::{self as sc, PairStats, Referral};

/// Most referrals one answer lists (the state keeps at most this many per list).
pub const MAX_LIST: usize = sc::MAX_LISTED;

/// A referral with who it waits for.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ReferralView {
    #[serde(flatten)]
    pub referral: Referral,
    /// Before the receiving institution sees it: whose agreement is missing.
    pub awaiting: Option<String>,
}

impl From<Referral> for ReferralView {
    fn from(r: Referral) -> Self {
        ReferralView { awaiting: r.awaiting().map(str::to_string), referral: r }
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ReferralsView {
    /// Oldest first.
    pub referrals: Vec<ReferralView>,
}

/// Which of an institution's lists.
#[derive(Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mailbox {
    /// Referrals that reached it.
    Inbox,
    /// Referrals its doctors made.
    Outbox,
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BoxQuery {
    #[serde(rename = "box")]
    #[param(rename = "box")]
    pub mailbox: Mailbox,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct PairStatsView {
    #[serde(flatten)]
    pub stats: PairStats,
    /// Mean time from request to acceptance, ms.
    pub mean_accept_ms: Option<u64>,
    /// Mean time from request to completion, ms.
    pub mean_turnaround_ms: Option<u64>,
}

/// Referral statistics: institution pairs only, no patient.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ReferralStatsView {
    pub pairs: Vec<PairStatsView>,
    /// The same summed per (referring, receiving) region pair, under each institution's
    /// current region (`unassigned` for an institution placed in none).
    pub regions: Vec<PairStatsView>,
}

fn stats_view(s: PairStats) -> PairStatsView {
    PairStatsView { mean_accept_ms: s.mean_accept_ms(), mean_turnaround_ms: s.mean_turnaround_ms(), stats: s }
}

fn visible(caller: &Caller, list: Vec<Referral>) -> ReferralsView {
    ReferralsView { referrals: list.into_iter().filter(|r| caller.may_see_referral(r)).map(Into::into).collect() }
}

#[utoipa::path(tag = "care", get, path = "/v1/care/referrals/{id}", params(("id" = Hash, Path, description = "referral id")),
    responses((status = 200, body = ReferralView), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`)", body = ErrorBody), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 403, description = "`not_permitted`: not a party to this referral; credential problems", body = ErrorBody), (status = 404, description = "`not_found`", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
pub(crate) async fn referral(
    State(st): State<ApiState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ReferralView>, ApiError> {
    let id = parse_hash(&id, "referral id")?;
    let snap = snapshot(&st)?;
    let r = sc::referral(&snap, &id).ok_or_else(|| ApiError::not_found(format!("no referral {id}")))?;
    if !caller.may_see_referral(&r) {
        return Err(not_yours("this referral"));
    }
    Ok(Json(r.into()))
}

#[utoipa::path(tag = "care", get, path = "/v1/care/patients/{pseudonym}/referrals", params(("pseudonym" = Hash, Path, description = "patient pseudonym")),
    responses((status = 200, description = "the patient's referrals the caller may see, oldest first", body = ReferralsView), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`)", body = ErrorBody), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 403, description = "credential problems", body = ErrorBody), (status = 404, description = "`not_found`: no such patient", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
pub(crate) async fn patient_referrals(
    State(st): State<ApiState>,
    caller: Caller,
    ApiPath(p): ApiPath<String>,
) -> Result<Json<ReferralsView>, ApiError> {
    let p = parse_hash(&p, "pseudonym")?;
    let snap = snapshot(&st)?;
    state_identity::patient_key(&snap, &p).ok_or_else(|| ApiError::not_found("no patient with this pseudonym"))?;
    Ok(Json(visible(&caller, sc::of_patient(&snap, &p))))
}

#[utoipa::path(tag = "care", get, path = "/v1/care/institutions/{institution}/referrals", params(("institution" = String, Path, description = "institution id"), BoxQuery),
    responses((status = 200, description = "the institution's inbox (referrals that reached it) or outbox (referrals its doctors made), oldest first", body = ReferralsView), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`)", body = ErrorBody), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 403, description = "`not_permitted`: only the institution's doctors and admins, and regulators; credential problems", body = ErrorBody), (status = 404, description = "`not_found`: no such institution", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
pub(crate) async fn institution_referrals(
    State(st): State<ApiState>,
    caller: Caller,
    ApiPath(inst): ApiPath<String>,
    ApiQuery(q): ApiQuery<BoxQuery>,
) -> Result<Json<ReferralsView>, ApiError> {
    let snap = snapshot(&st)?;
    state_identity::institution(&snap, &inst)
        .ok_or_else(|| ApiError::not_found(format!("unknown institution `{inst}`")))?;
    if !caller.may_see_referrals_of(&inst) {
        return Err(not_yours(&format!("the referrals of `{inst}`")));
    }
    let list = match q.mailbox {
        Mailbox::Inbox => sc::inbox(&snap, &inst),
        Mailbox::Outbox => sc::outbox(&snap, &inst),
    };
    Ok(Json(visible(&caller, list)))
}

#[utoipa::path(tag = "care", get, path = "/v1/care/doctors/{key}/referrals", params(("key" = PublicKey, Path, description = "the doctor's ed25519 public key")),
    responses((status = 200, description = "referrals naming the doctor (treating or receiving) that the caller may see, oldest first", body = ReferralsView), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`)", body = ErrorBody), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 403, description = "credential problems", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
pub(crate) async fn doctor_referrals(
    State(st): State<ApiState>,
    caller: Caller,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<ReferralsView>, ApiError> {
    let key = parse_key(&key)?;
    let snap = snapshot(&st)?;
    Ok(Json(visible(&caller, sc::of_doctor(&snap, &key))))
}

#[utoipa::path(tag = "care", get, path = "/v1/care/stats",
    responses((status = 200, description = "referral counts and turnaround per (referring, receiving) institution pair and per region pair; no patient appears", body = ReferralStatsView), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`)", body = ErrorBody), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 403, description = "`not_permitted`: regulators and institution admins only; credential problems", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
pub(crate) async fn stats(State(st): State<ApiState>, caller: Caller) -> Result<Json<ReferralStatsView>, ApiError> {
    if !caller.may_see_referral_stats() {
        return Err(not_yours("referral statistics (regulators and institution admins only)"));
    }
    let snap = snapshot(&st)?;
    let pairs = sc::stats(&snap).into_iter().map(stats_view).collect();
    let regions = sc::stats_by_region(&snap).into_iter().map(stats_view).collect();
    Ok(Json(ReferralStatsView { pairs, regions }))
}

/// A patient's monitoring: devices (FHIR `Device`), settings and the responsible doctor.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct MonitoringView {
    pub patient: Hash,
    pub devices: Vec<Device>,
    /// `None` until a doctor sets the monitoring.
    pub monitoring: Option<Monitoring>,
}

impl MonitoringView {
    fn of(snap: &dyn medledger_state::store::StateRead, p: Hash) -> MonitoringView {
        MonitoringView { patient: p, devices: sm::devices_of(snap, &p), monitoring: sm::monitoring(snap, &p) }
    }
}

/// Alarms (FHIR `Flag`): causes and reading digests, never values. Oldest first.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct AlarmsView {
    pub alarms: Vec<Alarm>,
}

fn monitored_patient(
    st: &ApiState,
    caller: &Caller,
    p: &str,
) -> Result<(Hash, impl medledger_state::store::StateRead), ApiError> {
    let p = parse_hash(p, "pseudonym")?;
    let snap = snapshot(st)?;
    state_identity::patient_key(&snap, &p).ok_or_else(|| ApiError::not_found("no patient with this pseudonym"))?;
    if !caller.may_see_monitoring_of(&snap, &p) {
        return Err(not_yours("this patient's monitoring"));
    }
    Ok((p, snap))
}

#[utoipa::path(tag = "care", get, path = "/v1/care/patients/{pseudonym}/monitoring", params(("pseudonym" = Hash, Path, description = "patient pseudonym")),
    responses((status = 200, body = MonitoringView), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`)", body = ErrorBody), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 403, description = "`not_permitted`: only the patient, the patient's institution, consent holders and regulators; credential problems", body = ErrorBody), (status = 404, description = "`not_found`: no such patient", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
pub(crate) async fn patient_monitoring(
    State(st): State<ApiState>,
    caller: Caller,
    ApiPath(p): ApiPath<String>,
) -> Result<Json<MonitoringView>, ApiError> {
    let (p, snap) = monitored_patient(&st, &caller, &p)?;
    Ok(Json(MonitoringView::of(&snap, p)))
}

#[utoipa::path(tag = "care", get, path = "/v1/care/patients/{pseudonym}/alarms", params(("pseudonym" = Hash, Path, description = "patient pseudonym")),
    responses((status = 200, body = AlarmsView), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`)", body = ErrorBody), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 403, description = "`not_permitted`: only the patient, the patient's institution, consent holders and regulators; credential problems", body = ErrorBody), (status = 404, description = "`not_found`: no such patient", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
pub(crate) async fn patient_alarms(
    State(st): State<ApiState>,
    caller: Caller,
    ApiPath(p): ApiPath<String>,
) -> Result<Json<AlarmsView>, ApiError> {
    let (p, snap) = monitored_patient(&st, &caller, &p)?;
    Ok(Json(AlarmsView { alarms: sm::alarms_of_patient(&snap, &p) }))
}

#[utoipa::path(tag = "care", get, path = "/v1/care/doctors/{key}/alarms", params(("key" = PublicKey, Path, description = "the doctor's ed25519 public key")),
    responses((status = 200, description = "alarms the doctor is responsible for or was escalated, oldest first", body = AlarmsView), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`)", body = ErrorBody), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 403, description = "`not_permitted`: only that doctor, the admins of the doctor's institution and regulators; credential problems", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
pub(crate) async fn doctor_alarms(
    State(st): State<ApiState>,
    caller: Caller,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<AlarmsView>, ApiError> {
    let key = parse_key(&key)?;
    let snap = snapshot(&st)?;
    if !caller.may_see_alarms_of(&snap, &key) {
        return Err(not_yours("this doctor's alarms"));
    }
    Ok(Json(AlarmsView { alarms: sm::alarms_of_doctor(&snap, &key) }))
}

/// The patients a doctor is responsible for monitoring, with their devices and settings.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct MonitoredPatientsView {
    pub patients: Vec<MonitoringView>,
}

#[utoipa::path(tag = "care", get, path = "/v1/care/doctors/{key}/patients", params(("key" = PublicKey, Path, description = "the doctor's ed25519 public key")),
    responses((status = 200, description = "the patients whose monitoring the doctor is responsible for, oldest first, with their devices and settings", body = MonitoredPatientsView), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`)", body = ErrorBody), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 403, description = "`not_permitted`: only that doctor, the admins of the doctor's institution and regulators; credential problems", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
pub(crate) async fn doctor_patients(
    State(st): State<ApiState>,
    caller: Caller,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<MonitoredPatientsView>, ApiError> {
    let key = parse_key(&key)?;
    let snap = snapshot(&st)?;
    if !caller.may_see_alarms_of(&snap, &key) {
        return Err(not_yours("the patients this doctor monitors"));
    }
    let patients = sm::patients_of_doctor(&snap, &key).into_iter().map(|p| MonitoringView::of(&snap, p)).collect();
    Ok(Json(MonitoredPatientsView { patients }))
}

#[utoipa::path(tag = "care", get, path = "/v1/care/patients/{pseudonym}/readings", params(("pseudonym" = Hash, Path, description = "patient pseudonym")),
    responses((status = 200, description = "the latest readings this node received for the patient (newest first) and the NEWS2 score of the latest complete set; values, so only the patient, the responsible doctor and the institution's on-call doctor may read them", body = crate::care::LiveReadings), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`)", body = ErrorBody), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 403, description = "`not_permitted`: not the patient, the responsible doctor or the on-call doctor; credential problems", body = ErrorBody), (status = 404, description = "`not_found`: no such patient, or no monitoring set", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 421, description = "`wrong_holder`: another institution monitors this patient; ask its node", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody), (status = 503, description = "`no_vault`: this node runs no record service", body = ErrorBody)))]
pub(crate) async fn patient_readings(
    State(st): State<ApiState>,
    caller: Caller,
    ApiPath(p): ApiPath<String>,
) -> Result<Json<crate::care::LiveReadings>, ApiError> {
    let p = parse_hash(&p, "pseudonym")?;
    let snap = snapshot(&st)?;
    state_identity::patient_key(&snap, &p).ok_or_else(|| ApiError::not_found("no patient with this pseudonym"))?;
    let m = sm::monitoring(&snap, &p).ok_or_else(|| ApiError::not_found("no monitoring is set for this patient"))?;
    if !caller.may_read_readings_of(&snap, &m) {
        return Err(not_yours("this patient's readings (the patient, the responsible and the on-call doctor only)"));
    }
    let svc = record_service(&st)?;
    if m.institution != svc.institution {
        return Err(crate::error::ServiceError::new(
            ErrorCode::WrongHolder,
            format!("`{}` monitors this patient; ask its node", m.institution),
        )
        .into());
    }
    Ok(Json(svc.monitor.live(&m)))
}

#[utoipa::path(tag = "care", post, path = "/v1/care/readings", request_body = crate::care::SignedReading,
    responses((status = 202, description = "checked, scored, stored encrypted in this institution's vault and queued for the device's next anchor; the alarms it raised are pending", body = crate::care::ReadingReceipt), (status = 400, description = "`malformed`, `invalid_argument`: bad hex, not an Observation, a wrong code or unit, an impossible value, a time in the future (the message names the JSON path)", body = ErrorBody), (status = 403, description = "`bad_signature`; `not_permitted`: an unknown or revoked device", body = ErrorBody), (status = 409, description = "`duplicate`: already received, or not after the device's anchored interval; `replayed_request`", body = ErrorBody), (status = 413, description = "`oversize`", body = ErrorBody), (status = 415, description = "`unsupported_media_type`", body = ErrorBody), (status = 421, description = "`wrong_holder`: another institution monitors this device", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody), (status = 503, description = "`no_vault`, `unavailable`, `mempool_full`", body = ErrorBody)))]
pub(crate) async fn ingest_reading(
    State(st): State<ApiState>,
    ApiJson(req): ApiJson<crate::care::SignedReading>,
) -> Result<Response, ApiError> {
    let svc = record_service(&st)?;
    let receipt =
        tokio::task::spawn_blocking(move || svc.monitor.ingest(&svc, &req)).await.map_err(ApiError::internal)??;
    Ok((StatusCode::ACCEPTED, Json(receipt)).into_response())
}

#[utoipa::path(tag = "care", get, path = "/v1/care/alarms/stream",
    responses((status = 200, description = "Server-sent events: `alarm` when an alarm the caller is responsible for (or was escalated) is finalized, with its id, cause, device, height and whether it is an escalation; never a value", content_type = "text/event-stream"), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`)", body = ErrorBody), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 403, description = "credential problems", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody)))]
pub(crate) async fn alarm_stream(
    State(st): State<ApiState>,
    caller: Caller,
) -> Sse<impl Stream<Item = Result<SseEvent, std::convert::Infallible>>> {
    let me = caller.key.to_hex();
    let rx = st.chain.subscribe();
    let stream =
        futures::stream::unfold((rx, me, std::collections::VecDeque::new()), |(mut rx, me, mut queue)| async move {
            loop {
                if let Some(ev) = queue.pop_front() {
                    return Some((Ok(ev), (rx, me, queue)));
                }
                match rx.recv().await {
                    Ok(f) => {
                        for r in f.receipts.iter() {
                            let medledger_types::Outcome::Applied { events } = &r.outcome else { continue };
                            for e in events {
                                let escalated = e.kind == "alarm_escalated";
                                if (e.kind == "alarm_raised" || escalated) && e.attr("doctor") == Some(me.as_str()) {
                                    let data = json!({
                                        "alarm": e.attr("alarm"),
                                        "cause": e.attr("cause"),
                                        "device": e.attr("device"),
                                        "escalated": escalated,
                                        "height": f.block.height(),
                                        "timestamp_ms": f.block.header.timestamp_ms,
                                    });
                                    queue.push_back(SseEvent::default().event("alarm").data(data.to_string()));
                                }
                            }
                        }
                    }
                    // A slow subscriber skips what it missed; the alarm list has everything.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// This namespace's routes.
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/care/referrals/{id}", get(referral))
        .route("/v1/care/patients/{pseudonym}/referrals", get(patient_referrals))
        .route("/v1/care/institutions/{institution}/referrals", get(institution_referrals))
        .route("/v1/care/doctors/{key}/referrals", get(doctor_referrals))
        .route("/v1/care/stats", get(stats))
        .route("/v1/care/patients/{pseudonym}/monitoring", get(patient_monitoring))
        .route("/v1/care/patients/{pseudonym}/alarms", get(patient_alarms))
        .route("/v1/care/doctors/{key}/alarms", get(doctor_alarms))
        .route("/v1/care/doctors/{key}/patients", get(doctor_patients))
        .route("/v1/care/patients/{pseudonym}/readings", get(patient_readings))
        .route("/v1/care/alarms/stream", get(alarm_stream))
        .route("/v1/care/readings", post(ingest_reading).layer(DefaultBodyLimit::max(limits::MAX_READING_BODY_BYTES)))
}

//! EventBridge Scheduler's CreateSchedule, GetSchedule, UpdateSchedule,
//! DeleteSchedule and ListSchedules (the `default` group) on the same
//! endpoint, signed for the service `scheduler`, so that `aws scheduler
//! ... --endpoint-url` works. A schedule's target is a Lambda function;
//! every fire is one async invocation of it ([`mayfly_host::schedules`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use mayfly_host::names::{parse_function, ACCOUNT_ID};
use mayfly_host::schedules::{next_fire, ScheduleSpec};
use mayfly_schedule::Schedule;
use mayfly_store::{now_ms, ScheduleRow, StoreError};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::request::{blocking, parse_json, Query};
use crate::{AppState, SharedState};

/// The only schedule group.
pub const DEFAULT_GROUP: &str = "default";
/// The region in schedule ARNs.
const REGION: &str = mayfly_host::names::DEFAULT_REGION;

fn validation(message: impl Into<String>) -> ApiError {
    ApiError::validation(message)
}

fn not_found(message: impl Into<String>) -> ApiError {
    let mut e = ApiError::not_found(message);
    e.code = "ResourceNotFoundException";
    e
}

fn conflict(message: impl Into<String>) -> ApiError {
    let mut e = ApiError::conflict(message);
    e.code = "ConflictException";
    e
}

fn is_name(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn check_name(name: &str) -> ApiResult<()> {
    if is_name(name) {
        Ok(())
    } else {
        Err(validation(format!(
            "1 validation error detected: Value '{name}' at 'name' failed to satisfy constraint: \
             Member must satisfy regular expression pattern: ^[0-9a-zA-Z-_.]+$"
        )))
    }
}

fn check_group(group: Option<&str>) -> ApiResult<&'static str> {
    match group {
        None | Some(DEFAULT_GROUP) => Ok(DEFAULT_GROUP),
        Some(other) => Err(not_found(format!("Schedule group {other} does not exist."))),
    }
}

fn arn(group: &str, name: &str) -> String {
    format!("arn:aws:scheduler:{REGION}:{ACCOUNT_ID}:schedule/{group}/{name}")
}

/// An integer field within `range`, if present.
fn integer(v: &Value, field: &str, range: std::ops::RangeInclusive<u64>) -> ApiResult<Option<u64>> {
    if v.is_null() {
        return Ok(None);
    }
    match v.as_u64() {
        Some(n) if range.contains(&n) => Ok(Some(n)),
        _ => Err(validation(format!(
            "1 validation error detected: Value '{v}' at '{field}' failed to satisfy constraint: \
             Member must have value between {} and {}",
            range.start(),
            range.end()
        ))),
    }
}

/// Checks a Create or Update body; returns the configuration as stored.
fn check(body: &[u8]) -> ApiResult<Value> {
    let body: Value = parse_json(body)?;
    let Some(fields) = body.as_object() else {
        return Err(validation("the request body must be a JSON object"));
    };
    let mut out = Map::new();
    let expression = fields
        .get("ScheduleExpression")
        .and_then(Value::as_str)
        .ok_or_else(|| validation("ScheduleExpression is required"))?;
    if expression.len() > 256 {
        return Err(validation("ScheduleExpression is at most 256 characters"));
    }
    out.insert("ScheduleExpression".into(), json!(expression));
    let zone = fields
        .get("ScheduleExpressionTimezone")
        .and_then(Value::as_str);
    if let Some(zone) = zone {
        out.insert("ScheduleExpressionTimezone".into(), json!(zone));
    }
    for date in ["StartDate", "EndDate"] {
        if let Some(v) = fields.get(date).filter(|v| !v.is_null()) {
            if v.as_f64().is_none() {
                return Err(validation(format!("{date} must be a timestamp")));
            }
            out.insert(date.into(), v.clone());
        }
    }
    let start = out.get("StartDate").and_then(Value::as_f64);
    let end = out.get("EndDate").and_then(Value::as_f64);
    if let (Some(start), Some(end)) = (start, end) {
        if end <= start {
            return Err(validation("The EndDate must be later than the StartDate."));
        }
    }
    Schedule::new(
        expression,
        zone,
        start.map(|s| (s * 1000.0) as i64),
        end.map(|s| (s * 1000.0) as i64),
        0,
    )
    .map_err(|e| validation(e.to_string()))?;
    match fields.get("State").and_then(Value::as_str) {
        None | Some("ENABLED") => out.insert("State".into(), json!("ENABLED")),
        Some("DISABLED") => out.insert("State".into(), json!("DISABLED")),
        Some(other) => {
            return Err(validation(format!(
                "1 validation error detected: Value '{other}' at 'state' failed to satisfy \
                 constraint: Member must satisfy enum value set: [ENABLED, DISABLED]"
            )))
        }
    };
    match fields.get("ActionAfterCompletion").and_then(Value::as_str) {
        None | Some("NONE") => out.insert("ActionAfterCompletion".into(), json!("NONE")),
        Some("DELETE") => out.insert("ActionAfterCompletion".into(), json!("DELETE")),
        Some(other) => {
            return Err(validation(format!(
                "1 validation error detected: Value '{other}' at 'actionAfterCompletion' failed \
                 to satisfy constraint: Member must satisfy enum value set: [NONE, DELETE]"
            )))
        }
    };
    if let Some(description) = fields.get("Description").and_then(Value::as_str) {
        if description.chars().count() > 512 {
            return Err(validation("Description is at most 512 characters"));
        }
        out.insert("Description".into(), json!(description));
    }
    let window = fields
        .get("FlexibleTimeWindow")
        .ok_or_else(|| validation("FlexibleTimeWindow is required"))?;
    match window["Mode"].as_str() {
        Some("OFF") => {
            out.insert("FlexibleTimeWindow".into(), json!({"Mode": "OFF"}));
        }
        Some("FLEXIBLE") => {
            let minutes = integer(
                &window["MaximumWindowInMinutes"],
                "flexibleTimeWindow.maximumWindowInMinutes",
                1..=1440,
            )?
            .ok_or_else(|| {
                validation("MaximumWindowInMinutes is required when Mode is FLEXIBLE")
            })?;
            out.insert(
                "FlexibleTimeWindow".into(),
                json!({"Mode": "FLEXIBLE", "MaximumWindowInMinutes": minutes}),
            );
        }
        _ => {
            return Err(validation(
                "FlexibleTimeWindow.Mode must be one of [OFF, FLEXIBLE]",
            ))
        }
    }
    let target = fields
        .get("Target")
        .and_then(Value::as_object)
        .ok_or_else(|| validation("Target is required"))?;
    let target_arn = target
        .get("Arn")
        .and_then(Value::as_str)
        .ok_or_else(|| validation("Target.Arn is required"))?;
    let role = target
        .get("RoleArn")
        .and_then(Value::as_str)
        .ok_or_else(|| validation("Target.RoleArn is required"))?;
    if !target_arn.starts_with("arn:aws:lambda:") || parse_function(target_arn, None).is_err() {
        return Err(validation(format!(
            "Target.Arn {target_arn} is not supported: Mayfly schedules invoke Lambda functions \
             (arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>])"
        )));
    }
    let mut checked = Map::new();
    checked.insert("Arn".into(), json!(target_arn));
    checked.insert("RoleArn".into(), json!(role));
    if let Some(input) = target.get("Input").and_then(Value::as_str) {
        if input.is_empty() || input.len() > mayfly_proto::limits::ASYNC_PAYLOAD_BYTES {
            return Err(validation("Target.Input must be 1 to 262144 bytes"));
        }
        if serde_json::from_str::<serde::de::IgnoredAny>(input).is_err() {
            return Err(validation(
                "Target.Input must be JSON: it is the event of the Lambda function",
            ));
        }
        checked.insert("Input".into(), json!(input));
    }
    let retry = target.get("RetryPolicy").cloned().unwrap_or(Value::Null);
    let age = integer(
        &retry["MaximumEventAgeInSeconds"],
        "target.retryPolicy.maximumEventAgeInSeconds",
        60..=86_400,
    )?
    .unwrap_or(mayfly_host::schedules::DEFAULT_MAX_EVENT_AGE_S);
    let attempts = integer(
        &retry["MaximumRetryAttempts"],
        "target.retryPolicy.maximumRetryAttempts",
        0..=185,
    )?
    .unwrap_or(185);
    checked.insert(
        "RetryPolicy".into(),
        json!({"MaximumEventAgeInSeconds": age, "MaximumRetryAttempts": attempts}),
    );
    if let Some(dlq) = target.get("DeadLetterConfig") {
        checked.insert("DeadLetterConfig".into(), dlq.clone());
    }
    out.insert("Target".into(), Value::Object(checked));
    Ok(Value::Object(out))
}

/// The group a body names, checked.
fn body_group(body: &[u8]) -> ApiResult<&'static str> {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    check_group(value["GroupName"].as_str())
}

/// A Create or Update request for `name`, checked: its group, the
/// configuration as stored, and what the scheduler reads of it.
fn written(name: &str, body: &[u8]) -> ApiResult<(&'static str, Value, ScheduleSpec)> {
    check_name(name)?;
    let group = body_group(body)?;
    let config = check(body)?;
    let spec = ScheduleSpec::of(&config).ok_or_else(|| validation("the schedule is incomplete"))?;
    Ok((group, config, spec))
}

fn seconds(ms: u64) -> Value {
    json!(ms as f64 / 1000.0)
}

/// GetSchedule's answer.
fn answer(row: &ScheduleRow) -> Value {
    let mut body = match &row.config {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    body.insert("Arn".into(), json!(arn(&row.group_name, &row.name)));
    body.insert("Name".into(), json!(row.name));
    body.insert("GroupName".into(), json!(row.group_name));
    body.insert("CreationDate".into(), seconds(row.created_ms));
    body.insert("LastModificationDate".into(), seconds(row.modified_ms));
    Value::Object(body)
}

fn store_error(group: &str, name: &str) -> impl Fn(StoreError) -> ApiError {
    let (group, name) = (group.to_string(), name.to_string());
    move |e| match e {
        e if e.is_not_found() => not_found(format!("Schedule {name} does not exist.")),
        StoreError::AlreadyExists { .. } => conflict(format!("Schedule {name} already exists.")),
        other => {
            let _ = &group;
            other.into()
        }
    }
}

/// `POST /schedules/{Name}`.
pub async fn create(
    State(state): State<SharedState>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let (group, config, spec) = written(&name, &body)?;
    let now = now_ms();
    let row = ScheduleRow {
        group_name: group.to_string(),
        next: next_fire(&spec, group, &name, now, now.saturating_sub(1)),
        name: name.clone(),
        config,
        created_ms: now,
        modified_ms: now,
    };
    blocking(&state, move |state: &AppState| {
        state
            .store
            .create_schedule(&row)
            .map_err(store_error(&row.group_name, &row.name))
    })
    .await?;
    Ok(Json(json!({ "ScheduleArn": arn(group, &name) })))
}

/// `?groupName=` of GetSchedule and DeleteSchedule.
#[derive(Debug, Default, Deserialize)]
pub struct GroupQuery {
    /// The group.
    #[serde(rename = "groupName")]
    pub group_name: Option<String>,
    /// Idempotency (accepted, not needed: a delete is idempotent here).
    #[serde(rename = "clientToken")]
    pub client_token: Option<String>,
}

/// `GET /schedules/{Name}`.
pub async fn get(
    State(state): State<SharedState>,
    Path(name): Path<String>,
    Query(query): Query<GroupQuery>,
) -> ApiResult<Json<Value>> {
    let group = check_group(query.group_name.as_deref())?;
    let row = state
        .store
        .get_schedule(group, &name)
        .map_err(store_error(group, &name))?;
    Ok(Json(answer(&row)))
}

/// `PUT /schedules/{Name}`: replaces the schedule's settings (as
/// Scheduler's does: fields left out take their defaults).
pub async fn update(
    State(state): State<SharedState>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let (group, config, spec) = written(&name, &body)?;
    let now = now_ms();
    let name_for = name.clone();
    blocking(&state, move |state: &AppState| {
        let missing = store_error(group, &name_for);
        let current = state
            .store
            .get_schedule(group, &name_for)
            .map_err(&missing)?;
        // The next fire after now, counted from when it was made (a rate
        // keeps its phase).
        let next = next_fire(&spec, group, &name_for, current.created_ms, now);
        state
            .store
            .update_schedule(group, &name_for, config, now, next)
            .map_err(missing)
    })
    .await?;
    Ok(Json(json!({ "ScheduleArn": arn(group, &name) })))
}

/// `DELETE /schedules/{Name}`.
pub async fn delete(
    State(state): State<SharedState>,
    Path(name): Path<String>,
    Query(query): Query<GroupQuery>,
) -> ApiResult<Json<Value>> {
    let group = check_group(query.group_name.as_deref())?;
    blocking(&state, move |state: &AppState| {
        state
            .store
            .delete_schedule(group, &name)
            .map_err(store_error(group, &name))
    })
    .await?;
    Ok(Json(json!({})))
}

/// ListSchedules' query.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// The group.
    #[serde(rename = "ScheduleGroup")]
    pub group: Option<String>,
    /// Page size, 1 to 100.
    #[serde(rename = "MaxResults")]
    pub max_results: Option<usize>,
    /// Only names starting so.
    #[serde(rename = "NamePrefix")]
    pub name_prefix: Option<String>,
    /// Where the previous page ended.
    #[serde(rename = "NextToken")]
    pub next_token: Option<String>,
    /// Only schedules in this state.
    #[serde(rename = "State")]
    pub state: Option<String>,
}

/// `GET /schedules`.
pub async fn list(
    State(state): State<SharedState>,
    Query(query): Query<ListQuery>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let group = check_group(query.group.as_deref())?;
    let size = match query.max_results {
        None => 100,
        Some(n @ 1..=100) => n,
        Some(n) => {
            return Err(validation(format!(
                "1 validation error detected: Value '{n}' at 'maxResults' failed to satisfy \
                 constraint: Member must have value between 1 and 100"
            )))
        }
    };
    let wanted = query.state.clone();
    let (rows, next) = state.store.list_schedules(
        group,
        query.name_prefix.as_deref().unwrap_or(""),
        query.next_token.as_deref(),
        size,
    )?;
    let schedules: Vec<Value> = rows
        .iter()
        .filter(|r| {
            wanted
                .as_deref()
                .is_none_or(|w| r.config["State"].as_str() == Some(w))
        })
        .map(|r| {
            json!({
                "Arn": arn(&r.group_name, &r.name),
                "Name": r.name,
                "GroupName": r.group_name,
                "State": r.config["State"],
                "CreationDate": seconds(r.created_ms),
                "LastModificationDate": seconds(r.modified_ms),
                "Target": {"Arn": r.config["Target"]["Arn"]},
            })
        })
        .collect();
    let mut body = json!({ "Schedules": schedules });
    if let Some(next) = next {
        body["NextToken"] = json!(next);
    }
    Ok((StatusCode::OK, Json(body)))
}

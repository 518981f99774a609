//! CreateEventSourceMapping, GetEventSourceMapping,
//! UpdateEventSourceMapping, DeleteEventSourceMapping and
//! ListEventSourceMappings with Lambda's shapes. A self-hosted source is
//! named by URI in `EventSourceArn` (`mqtt://127.0.0.1:1883/sensors/#`);
//! the host's [`mayfly_host::mappings`] consumes it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use mayfly_host::mappings::{mqtt, postgres, rabbitmq};
use mayfly_host::names::{function_arn, parse_function, ACCOUNT_ID, DEFAULT_REGION};
use mayfly_store::{now_ms, Mapping, StoreError};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::request::{blocking, invalid_value, parse_json, Query};
use crate::{AppState, SharedState};

/// Fields Lambda has that this host does not act on yet: refused rather
/// than stored and ignored.
const NOT_YET: &[&str] = &[
    "SelfManagedEventSource",
    "TumblingWindowInSeconds",
    "ParallelizationFactor",
    "Topics",
    "Queues",
];

fn number(
    fields: &Map<String, Value>,
    name: &str,
    field: &str,
    range: std::ops::RangeInclusive<i64>,
) -> ApiResult<Option<i64>> {
    match fields.get(name).filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(v) => match v.as_i64() {
            Some(n) if range.contains(&n) => Ok(Some(n)),
            _ => Err(invalid_value(
                v,
                field,
                &format!(
                    "Member must have value between {} and {}",
                    range.start(),
                    range.end()
                ),
            )),
        },
    }
}

/// Applies the fields of a Create or Update request to `config` (the
/// stored JSON), checking each.
fn apply(
    fields: &Map<String, Value>,
    config: &mut Map<String, Value>,
    state: &AppState,
) -> ApiResult<()> {
    if let Some(name) = NOT_YET.iter().find(|n| fields.contains_key(**n)) {
        return Err(ApiError::invalid_parameter(format!(
            "{name} is not supported by this host yet"
        )));
    }
    if let Some(v) = fields.get("FunctionName").and_then(Value::as_str) {
        let f = parse_function(v, None)?;
        state
            .store
            .resolve(&f.name, f.qualifier.as_deref())
            .map_err(|e| {
                if e.is_not_found() {
                    ApiError::not_found(format!(
                        "Function not found: {}",
                        function_arn(DEFAULT_REGION, &f.name, f.qualifier.as_deref())
                    ))
                } else {
                    e.into()
                }
            })?;
        config.insert(
            "FunctionArn".into(),
            json!(function_arn(
                DEFAULT_REGION,
                &f.name,
                f.qualifier.as_deref()
            )),
        );
    }
    if let Some(v) = fields.get("Enabled").filter(|v| !v.is_null()) {
        let enabled = v
            .as_bool()
            .ok_or_else(|| ApiError::validation("Enabled must be a boolean"))?;
        config.insert(
            "State".into(),
            json!(if enabled { "Enabled" } else { "Disabled" }),
        );
    }
    if let Some(n) = number(fields, "BatchSize", "batchSize", 1..=10_000)? {
        config.insert("BatchSize".into(), json!(n));
    }
    if let Some(n) = number(
        fields,
        "MaximumBatchingWindowInSeconds",
        "maximumBatchingWindowInSeconds",
        0..=300,
    )? {
        config.insert("MaximumBatchingWindowInSeconds".into(), json!(n));
    }
    if let Some(n) = number(
        fields,
        "MaximumRetryAttempts",
        "maximumRetryAttempts",
        -1..=10_000,
    )? {
        config.insert("MaximumRetryAttempts".into(), json!(n));
    }
    if let Some(v) = fields
        .get("BisectBatchOnFunctionError")
        .filter(|v| !v.is_null())
    {
        let on = v
            .as_bool()
            .ok_or_else(|| ApiError::validation("BisectBatchOnFunctionError must be a boolean"))?;
        config.insert("BisectBatchOnFunctionError".into(), json!(on));
    }
    if let Some(v) = fields.get("FunctionResponseTypes").filter(|v| !v.is_null()) {
        let types = v
            .as_array()
            .ok_or_else(|| ApiError::validation("FunctionResponseTypes must be a list"))?;
        if let Some(bad) = types.iter().find(|t| *t != "ReportBatchItemFailures") {
            return Err(invalid_value(
                bad,
                "functionResponseTypes",
                "Member must satisfy enum value set: [ReportBatchItemFailures]",
            ));
        }
        config.insert("FunctionResponseTypes".into(), v.clone());
    }
    if let Some(v) = fields.get("StartingPosition").and_then(Value::as_str) {
        if !["TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"].contains(&v) {
            return Err(invalid_value(
                v,
                "startingPosition",
                "Member must satisfy enum value set: [TRIM_HORIZON, LATEST, AT_TIMESTAMP]",
            ));
        }
        config.insert("StartingPosition".into(), json!(v));
    }
    if let Some(criteria) = fields.get("FilterCriteria").filter(|v| !v.is_null()) {
        mayfly_host::mappings::filter::Filters::parse(criteria).map_err(|why| {
            ApiError::invalid_parameter(format!("Invalid filter pattern definition: {why}"))
        })?;
        config.insert("FilterCriteria".into(), criteria.clone());
    }
    if let Some(access) = fields
        .get("SourceAccessConfigurations")
        .filter(|v| !v.is_null())
    {
        let list = access
            .as_array()
            .ok_or_else(|| ApiError::validation("SourceAccessConfigurations must be a list"))?;
        for item in list {
            if item["Type"] != "BASIC_AUTH" || !item["URI"].is_string() {
                return Err(ApiError::invalid_parameter(
                    "SourceAccessConfigurations: this host takes one BASIC_AUTH entry whose URI \
                     is the source's password",
                ));
            }
        }
        config.insert("SourceAccessConfigurations".into(), access.clone());
    }
    if let Some(destinations) = fields.get("DestinationConfig").filter(|v| !v.is_null()) {
        let mut checked = json!({});
        if let Some(arn) = destinations
            .pointer("/OnFailure/Destination")
            .and_then(Value::as_str)
        {
            let target = parse_function(arn, None)
                .ok()
                .filter(|_| arn.starts_with("arn:aws:lambda:"))
                .ok_or_else(|| {
                    ApiError::invalid_parameter(format!(
                        "The destination ARN {arn} is not supported: Mayfly delivers failed \
                         batches to Lambda functions (arn:aws:lambda:<region>:<account>:function:<name>)"
                    ))
                })?;
            if state
                .store
                .resolve(&target.name, target.qualifier.as_deref())
                .is_err()
            {
                return Err(ApiError::invalid_parameter(format!(
                    "The destination function {arn} does not exist"
                )));
            }
            checked["OnFailure"] = json!({ "Destination": arn });
        }
        config.insert("DestinationConfig".into(), checked);
    }
    Ok(())
}

/// The mapping as the API shows it.
fn answer(mapping: &Mapping) -> Value {
    let mut body = match &mapping.config {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    body.insert("UUID".into(), json!(mapping.uuid));
    body.insert(
        "EventSourceMappingArn".into(),
        json!(format!(
            "arn:aws:lambda:{DEFAULT_REGION}:{ACCOUNT_ID}:event-source-mapping:{}",
            mapping.uuid
        )),
    );
    body.insert(
        "LastModified".into(),
        json!(mapping.modified_ms as f64 / 1000.0),
    );
    body.insert("StateTransitionReason".into(), json!("USER_INITIATED"));
    body.entry("LastProcessingResult")
        .or_insert_with(|| json!("No records processed"));
    // A password is kept, never shown.
    if let Some(Value::Array(access)) = body.get_mut("SourceAccessConfigurations") {
        for item in access {
            item["URI"] = json!("****");
        }
    }
    Value::Object(body)
}

fn not_found(uuid: &str) -> impl Fn(StoreError) -> ApiError + '_ {
    move |e| {
        if e.is_not_found() {
            ApiError::not_found(format!(
                "The resource you requested does not exist. (Service: Lambda, Status Code: 404, \
                 Request ID: {uuid})"
            ))
        } else {
            e.into()
        }
    }
}

/// `POST /2015-03-31/event-source-mappings`.
pub async fn create(
    State(state): State<SharedState>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    // A JSON object, or a ValidationException.
    let fields: Map<String, Value> = parse_json(&body)?;
    if fields.get("FunctionName").and_then(Value::as_str).is_none() {
        return Err(ApiError::validation(
            "1 validation error detected: Value null at 'functionName' failed to satisfy \
             constraint: Member must not be null",
        ));
    }
    let source = fields
        .get("EventSourceArn")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::invalid_parameter(
                "EventSourceArn is required: the source, by URI for a self-hosted one",
            )
        })?
        .to_string();
    if source.starts_with("arn:aws:s3:::") || source.starts_with("s3://") {
        // As in Lambda, a bucket is not mapped: it notifies.
        return Err(ApiError::invalid_parameter(format!(
            "Unsupported event source {source}: a bucket invokes a function through its \
             notifications, not an event-source mapping; give the bucket's topic the endpoint \
             `mayfly notification-endpoint FUNCTION` prints, and add a permission for \
             s3.amazonaws.com (see the README's Object uploads)"
        )));
    }
    let readable = if source.starts_with("mqtt://") {
        mqtt::Target::parse(&source).map(|_| ())
    } else if source.starts_with("amqp://") {
        rabbitmq::Target::parse(&source).map(|_| ())
    } else {
        postgres::Target::parse(&source).map(|_| ())
    };
    readable.map_err(|why| {
        ApiError::invalid_parameter(format!(
            "Unsupported event source {source}: this host reads mqtt://HOST:PORT/TOPIC-FILTER, \
             postgresql://USER@HOST:PORT/DATABASE?table=TABLE and \
             amqp://USER@HOST:PORT/VHOST/QUEUE ({why})"
        ))
    })?;
    let mapping = blocking(&state, move |state: &AppState| {
        let mut config = Map::new();
        config.insert("EventSourceArn".into(), json!(source));
        config.insert("State".into(), json!("Enabled"));
        config.insert("BatchSize".into(), json!(100));
        config.insert("MaximumBatchingWindowInSeconds".into(), json!(0));
        config.insert("MaximumRetryAttempts".into(), json!(-1));
        config.insert("BisectBatchOnFunctionError".into(), json!(false));
        config.insert("FunctionResponseTypes".into(), json!([]));
        config.insert("DestinationConfig".into(), json!({}));
        apply(&fields, &mut config, state)?;
        let function = config["FunctionArn"]
            .as_str()
            .and_then(|arn| parse_function(arn, None).ok())
            .map(|f| f.name)
            .unwrap_or_default();
        let mapping = Mapping {
            uuid: uuid::Uuid::new_v4().to_string(),
            function_name: function,
            config: Value::Object(config),
            modified_ms: now_ms(),
        };
        state.store.create_mapping(&mapping)?;
        Ok(mapping)
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(answer(&mapping))))
}

/// `GET /2015-03-31/event-source-mappings/{uuid}`.
pub async fn get(
    State(state): State<SharedState>,
    Path(uuid): Path<String>,
) -> ApiResult<Json<Value>> {
    let mapping = state.store.get_mapping(&uuid).map_err(not_found(&uuid))?;
    Ok(Json(answer(&mapping)))
}

/// `PUT /2015-03-31/event-source-mappings/{uuid}`.
pub async fn update(
    State(state): State<SharedState>,
    Path(uuid): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    // A JSON object, or a ValidationException.
    let fields: Map<String, Value> = parse_json(&body)?;
    let id = uuid.clone();
    let updated = blocking(&state, move |state: &AppState| {
        // Checked outside the write (the checks read the store), then
        // written in one step.
        let current = state.store.get_mapping(&id).map_err(not_found(&id))?;
        let Value::Object(mut config) = current.config else {
            return Err(ApiError::service(crate::error::INTERNAL_MESSAGE));
        };
        apply(&fields, &mut config, state)?;
        let function = config["FunctionArn"]
            .as_str()
            .and_then(|arn| parse_function(arn, None).ok())
            .map(|f| f.name)
            .unwrap_or(current.function_name);
        let changed = state
            .store
            .update_mapping(&id, now_ms(), |mapping| {
                mapping.config = Value::Object(config);
                mapping.function_name = function;
                Ok::<(), ApiError>(())
            })
            .map_err(not_found(&id))?;
        changed
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(answer(&updated))))
}

/// `DELETE /2015-03-31/event-source-mappings/{uuid}`.
pub async fn delete(
    State(state): State<SharedState>,
    Path(uuid): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = uuid.clone();
    let deleted = blocking(&state, move |state: &AppState| {
        state.store.delete_mapping(&id).map_err(not_found(&id))
    })
    .await?;
    let mut body = answer(&deleted);
    body["State"] = json!("Deleting");
    Ok((StatusCode::ACCEPTED, Json(body)))
}

/// ListEventSourceMappings' query.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Only this function's.
    #[serde(rename = "FunctionName")]
    pub function_name: Option<String>,
    /// Only this source's.
    #[serde(rename = "EventSourceArn")]
    pub event_source_arn: Option<String>,
    /// Where the previous page ended.
    #[serde(rename = "Marker")]
    pub marker: Option<String>,
    /// Page size, 1 to 10000 (at most 100 a page).
    #[serde(rename = "MaxItems")]
    pub max_items: Option<usize>,
}

/// `GET /2015-03-31/event-source-mappings`.
pub async fn list(
    State(state): State<SharedState>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let function = match &query.function_name {
        Some(name) => Some(parse_function(name, None)?.name),
        None => None,
    };
    let size = query.max_items.unwrap_or(100).clamp(1, 100);
    let all = state.store.list_mappings(function.as_deref())?;
    let mut page: Vec<&Mapping> = all
        .iter()
        .filter(|m| {
            query
                .event_source_arn
                .as_deref()
                .is_none_or(|s| m.config["EventSourceArn"] == s)
        })
        .filter(|m| {
            query
                .marker
                .as_deref()
                .is_none_or(|after| m.uuid.as_str() > after)
        })
        .take(size + 1)
        .collect();
    let next = (page.len() > size).then(|| {
        page.truncate(size);
        page.last().map(|m| m.uuid.clone()).unwrap_or_default()
    });
    let mut body =
        json!({ "EventSourceMappings": page.iter().map(|m| answer(m)).collect::<Vec<_>>() });
    if let Some(next) = next {
        body["NextMarker"] = json!(next);
    }
    Ok(Json(body))
}

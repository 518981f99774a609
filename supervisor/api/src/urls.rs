//! CreateFunctionUrlConfig, GetFunctionUrlConfig, UpdateFunctionUrlConfig,
//! DeleteFunctionUrlConfig and ListFunctionUrlConfigs: a URL per function
//! and qualifier (`$LATEST` or an alias), served by the URL front
//! ([`crate::url_front`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use bytes::Bytes;
use mayfly_function_url::address;
use mayfly_function_url::config::{AuthType, Cors, InvokeMode, UrlConfig};
use mayfly_host::names::{function_arn, parse_function, FunctionRef};
use mayfly_store::{FunctionUrl, StoreError, LATEST};
use serde_json::{json, Map, Value};

use crate::auth::Identity;
use crate::error::{ApiError, ApiResult};
use crate::request::{blocking, invalid_value, page, parse_json};
use crate::request::{PageQuery, QualifierQuery, Query};
use crate::{AppState, SharedState};

/// The fields of a Create or Update request, checked; `None` where absent.
#[derive(Debug, Default)]
struct Fields {
    auth_type: Option<AuthType>,
    cors: Option<Option<Cors>>,
    invoke_mode: Option<InvokeMode>,
}

fn fields(body: &[u8]) -> ApiResult<Fields> {
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        parse_json(body)?
    };
    let Some(object) = body.as_object() else {
        return Err(ApiError::validation(
            "the request body must be a JSON object",
        ));
    };
    let mut out = Fields::default();

    if let Some(v) = object.get("AuthType").filter(|v| !v.is_null()) {
        let text = v.as_str().unwrap_or("");
        out.auth_type = Some(AuthType::parse(text).ok_or_else(|| {
            invalid_value(
                text,
                "authType",
                "Member must satisfy enum value set: [AWS_IAM, NONE]",
            )
        })?);
    }
    if let Some(v) = object.get("InvokeMode").filter(|v| !v.is_null()) {
        let text = v.as_str().unwrap_or("");
        out.invoke_mode = Some(InvokeMode::parse(text).ok_or_else(|| {
            invalid_value(
                text,
                "invokeMode",
                "Member must satisfy enum value set: [BUFFERED, RESPONSE_STREAM]",
            )
        })?);
    }
    if let Some(v) = object.get("Cors") {
        let cors: Option<Cors> = serde_json::from_value(v.clone())
            .map_err(|e| ApiError::validation(format!("the Cors object is not valid: {e}")))?;
        if let Some(cors) = &cors {
            cors.check()
                .map_err(|e| ApiError::validation(format!("1 validation error detected: {e}")))?;
        }
        out.cors = Some(cors);
    }
    Ok(out)
}

/// The function and the qualifier its URL is for (`$LATEST` when none).
fn target(param: &str, query: &QualifierQuery) -> ApiResult<(FunctionRef, String)> {
    let f = parse_function(param, query.qualifier.as_deref())?;
    let qualifier = f.qualifier.clone().unwrap_or_else(|| LATEST.to_string());
    Ok((f, qualifier))
}

/// The ARN Lambda shows for the URL of `qualifier`: unqualified for
/// `$LATEST`.
fn arn_for(region: &str, name: &str, qualifier: &str) -> String {
    let qualifier = (qualifier != LATEST).then_some(qualifier);
    function_arn(region, name, qualifier)
}

fn time(stored: &str) -> String {
    mayfly_store::parse_timestamp_ms(stored)
        .map(mayfly_store::format_rfc3339)
        .unwrap_or_else(|| stored.to_string())
}

/// The URL's configuration as the API shows it.
pub fn answer(url: &FunctionUrl, region: &str, state: &AppState, created: bool) -> Value {
    let config: UrlConfig = serde_json::from_value(url.config.clone()).unwrap_or(UrlConfig {
        auth_type: AuthType::AwsIam,
        cors: None,
        invoke_mode: InvokeMode::Buffered,
    });
    let mut body = Map::new();
    let front = &state.url_front;
    body.insert(
        "FunctionUrl".into(),
        json!(address::url(&url.url_id, region, &front.domain, front.port)),
    );
    body.insert(
        "FunctionArn".into(),
        json!(arn_for(region, &url.function_name, &url.qualifier)),
    );
    body.insert("AuthType".into(), json!(config.auth_type.as_str()));
    if let Some(cors) = &config.cors {
        body.insert(
            "Cors".into(),
            serde_json::to_value(cors).unwrap_or_default(),
        );
    }
    body.insert("CreationTime".into(), json!(time(&url.created)));
    if !created {
        body.insert("LastModifiedTime".into(), json!(time(&url.last_modified)));
    }
    body.insert(
        "InvokeMode".into(),
        serde_json::to_value(config.invoke_mode).unwrap_or_default(),
    );
    Value::Object(body)
}

/// A store error as Lambda answers it for the URL of `name:qualifier`.
fn url_error(name: &str, qualifier: &str, region: &str) -> impl Fn(StoreError) -> ApiError {
    let arn = arn_for(region, name, qualifier);
    move |e| match e {
        StoreError::NotFound {
            kind: mayfly_store::Kind::FunctionUrlConfig,
            ..
        } => ApiError::not_found("The resource you requested does not exist."),
        e if e.is_not_found() => ApiError::not_found(format!("Function not found: {arn}")),
        StoreError::AlreadyExists { .. } => ApiError::conflict(format!(
            "Failed to create function url config for [functionArn = {arn}]. Error message:  \
             FunctionUrlConfig exists for this Lambda function"
        )),
        StoreError::InvalidArgument { .. } => invalid_value(
            qualifier_text(&arn),
            "qualifier",
            "Member must satisfy regular expression pattern: ((?!^\\d+$)^[0-9a-zA-Z-_]+$)",
        ),
        other => other.into(),
    }
}

fn qualifier_text(arn: &str) -> &str {
    arn.rsplit(':').next().unwrap_or(arn)
}

/// `POST /2021-10-31/functions/{name}/url`.
pub async fn create(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Path(param): Path<String>,
    Query(query): Query<QualifierQuery>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (f, qualifier) = target(&param, &query)?;
    let fields = fields(&body)?;
    let Some(auth_type) = fields.auth_type else {
        return Err(ApiError::validation(
            "1 validation error detected: Value null at 'authType' failed to satisfy constraint: \
             Member must not be null",
        ));
    };
    let config = UrlConfig {
        auth_type,
        cors: fields.cors.flatten(),
        invoke_mode: fields.invoke_mode.unwrap_or_default(),
    };
    let mut config = serde_json::to_value(&config).unwrap_or_default();
    // The region of the URL's name and of the ARN its invocations carry.
    config["Region"] = json!(identity.region);
    let region = identity.region.clone();
    let url = blocking(&state, move |state: &AppState| {
        let url_id = uuid::Uuid::new_v4().simple().to_string();
        state
            .store
            .create_function_url(&f.name, &qualifier, &url_id, config)
            .map_err(url_error(&f.name, &qualifier, &region))
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(answer(&url, &identity.region, &state, true)),
    ))
}

/// `GET /2021-10-31/functions/{name}/url`.
pub async fn get(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Path(param): Path<String>,
    Query(query): Query<QualifierQuery>,
) -> ApiResult<Json<Value>> {
    let (f, qualifier) = target(&param, &query)?;
    let url = state
        .store
        .get_function_url(&f.name, &qualifier)
        .map_err(url_error(&f.name, &qualifier, &identity.region))?;
    Ok(Json(answer(&url, &identity.region, &state, false)))
}

/// `PUT /2021-10-31/functions/{name}/url`: changes the fields given.
pub async fn update(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Path(param): Path<String>,
    Query(query): Query<QualifierQuery>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let (f, qualifier) = target(&param, &query)?;
    let fields = fields(&body)?;
    let region = identity.region.clone();
    let url = blocking(&state, move |state: &AppState| {
        state
            .store
            .update_function_url(&f.name, &qualifier, |config| {
                let Value::Object(map) = config else { return };
                if let Some(auth) = fields.auth_type {
                    map.insert("AuthType".into(), json!(auth.as_str()));
                }
                if let Some(mode) = fields.invoke_mode {
                    map.insert(
                        "InvokeMode".into(),
                        serde_json::to_value(mode).unwrap_or_default(),
                    );
                }
                match fields.cors {
                    Some(Some(cors)) => {
                        map.insert(
                            "Cors".into(),
                            serde_json::to_value(cors).unwrap_or_default(),
                        );
                    }
                    Some(None) => {
                        map.remove("Cors");
                    }
                    None => {}
                }
            })
            .map_err(url_error(&f.name, &qualifier, &region))
    })
    .await?;
    Ok(Json(answer(&url, &identity.region, &state, false)))
}

/// `DELETE /2021-10-31/functions/{name}/url`.
pub async fn delete(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Path(param): Path<String>,
    Query(query): Query<QualifierQuery>,
) -> ApiResult<StatusCode> {
    let (f, qualifier) = target(&param, &query)?;
    let region = identity.region.clone();
    blocking(&state, move |state: &AppState| {
        state
            .store
            .delete_function_url(&f.name, &qualifier)
            .map_err(url_error(&f.name, &qualifier, &region))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /2021-10-31/functions/{name}/urls`.
pub async fn list(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Path(param): Path<String>,
    Query(query): Query<PageQuery>,
) -> ApiResult<Json<Value>> {
    let f = parse_function(&param, None)?;
    let listed = state
        .store
        .list_function_urls(&f.name, query.marker.as_deref(), query.size()?)
        .map_err(url_error(&f.name, LATEST, &identity.region))?;
    Ok(page("FunctionUrlConfigs", listed, |u| {
        answer(u, &identity.region, &state, false)
    }))
}

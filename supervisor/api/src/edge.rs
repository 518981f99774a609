//! What every response carries, whatever produced it: an
//! `x-amzn-RequestId`, and, when it is an error, Lambda's shape (an
//! `x-amzn-ErrorType` and a JSON body with `Type` and `message`). Errors
//! made elsewhere than [`ApiError`] (an extractor's rejection, a bare
//! status) are replaced by the Lambda error for their status, whose message
//! names no internal type or path.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::CONNECTION;
use http::HeaderValue;

use crate::error::ApiError;

/// The header that names a request, as Lambda writes it.
pub const REQUEST_ID_HEADER: &str = "x-amzn-requestid";

/// The id of one request (a UUID, as Lambda's), in the request's extensions
/// for handlers that need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// A fresh id.
    pub fn new() -> RequestId {
        RequestId(uuid::Uuid::new_v4().to_string())
    }
}

impl Default for RequestId {
    fn default() -> Self {
        RequestId::new()
    }
}

/// The middleware, outermost: gives the request its id and the response
/// its header and shape.
pub async fn edge(mut request: Request, next: Next) -> Response {
    let id = RequestId::new();
    request.extensions_mut().insert(id.clone());
    let response = next.run(request).await;
    finish(response, &id)
}

/// `response` with the request id and, if it is an error without Lambda's
/// shape, in that shape.
pub fn finish(mut response: Response, id: &RequestId) -> Response {
    let status = response.status();
    let shaped = response.headers().contains_key("x-amzn-errortype");
    if (status.is_client_error() || status.is_server_error()) && !shaped {
        let connection = response.headers().get(CONNECTION).cloned();
        response = ApiError::for_status(status).into_response();
        if let Some(connection) = connection {
            response.headers_mut().insert(CONNECTION, connection);
        }
    }
    if !response.headers().contains_key(REQUEST_ID_HEADER) {
        if let Ok(v) = HeaderValue::from_str(&id.0) {
            response.headers_mut().insert(REQUEST_ID_HEADER, v);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use http_body_util::BodyExt;

    async fn body_json(response: Response) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn bare_errors_take_lambdas_shape_and_every_response_an_id() {
        let id = RequestId::new();
        let rejection = (
            StatusCode::BAD_REQUEST,
            "Failed to deserialize query string: invalid type, expected usize at mayfly_api::request::PageQuery",
        )
            .into_response();
        let r = finish(rejection, &id);
        assert_eq!(r.status(), 400);
        assert_eq!(r.headers()["x-amzn-errortype"], "ValidationException");
        assert_eq!(r.headers()[REQUEST_ID_HEADER], id.0.as_str());
        let body = body_json(r).await;
        assert_eq!(body["Type"], "User");
        let message = body["message"].as_str().unwrap();
        assert!(
            !message.contains("usize") && !message.contains("::"),
            "{message}"
        );

        let r = finish(StatusCode::INTERNAL_SERVER_ERROR.into_response(), &id);
        assert_eq!(r.headers()["x-amzn-errortype"], "ServiceException");
        assert_eq!(body_json(r).await["Type"], "Service");

        // Lambda-shaped errors and successes keep what they have.
        let mut own = ApiError::not_found("Function not found: f").into_response();
        own.headers_mut()
            .insert("connection", HeaderValue::from_static("close"));
        let r = finish(own, &id);
        assert_eq!(r.headers()["x-amzn-errortype"], "ResourceNotFoundException");
        assert_eq!(r.headers()["connection"], "close");
        assert_eq!(body_json(r).await["message"], "Function not found: f");
        let mut ok = StatusCode::OK.into_response();
        ok.headers_mut()
            .insert(REQUEST_ID_HEADER, HeaderValue::from_static("invoke-id"));
        assert_eq!(finish(ok, &id).headers()[REQUEST_ID_HEADER], "invoke-id");
        assert_ne!(RequestId::new(), RequestId::new());
    }
}

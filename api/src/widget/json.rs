//! Request bodies of the widget API: [`WidgetJson`] takes a JSON *object* with exactly the
//! fields of its type. serde would otherwise read a struct from an array (`["hi"]` as
//! `{"content": "hi"}`); unknown fields are refused by `deny_unknown_fields` on the types.

use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::error::{ApiJson, AppError};

pub struct WidgetJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for WidgetJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let ApiJson(value) = ApiJson::<serde_json::Value>::from_request(req, state).await?;
        if !value.is_object() {
            return Err(AppError::Invalid("The body must be a JSON object.".into()));
        }
        serde_json::from_value(value).map(WidgetJson).map_err(|e| {
            AppError::Invalid(format!("The body does not have the expected fields: {e}"))
        })
    }
}

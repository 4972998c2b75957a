//! JSON columns are stored as text so that one schema serves SQLite and
//! PostgreSQL alike.

use serde::{Serialize, de::DeserializeOwned};

use crate::{Result, StoreError};

pub(crate) fn to_text<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn from_text<T: DeserializeOwned>(column: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

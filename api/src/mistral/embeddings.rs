//! Embeddings with `mistral-embed` (`POST /v1/embeddings`): knowledge chunks at ingestion
//! and the question at retrieval. Inputs go in batches of at most [`EMBED_BATCH`]; the answer
//! must hold exactly one vector per input, all of one dimension, or it is refused as
//! malformed (a wrong vector would silently corrupt retrieval).

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::client::{MistralClient, bearer};
use super::error::{UpstreamError, describe_json_error};

/// The embedding model knowledge is embedded with.
pub const EMBED_MODEL: &str = "mistral-embed";

/// Most inputs in one request: chunks are at most 1,500 characters, so a batch stays well
/// under the model's per-request token budget.
pub const EMBED_BATCH: usize = 32;

impl MistralClient {
    /// One vector per input, in input order; several requests when there are more than
    /// [`EMBED_BATCH`] inputs.
    pub async fn embed(
        &self,
        api_key: &SecretString,
        inputs: &[String],
    ) -> Result<Vec<Vec<f32>>, UpstreamError> {
        let auth = bearer(api_key)?;
        let mut out: Vec<Vec<f32>> = Vec::with_capacity(inputs.len());
        for batch in inputs.chunks(EMBED_BATCH) {
            #[derive(Serialize)]
            struct Body<'a> {
                model: &'a str,
                input: &'a [String],
            }
            let body = Body {
                model: EMBED_MODEL,
                input: batch,
            };
            let bytes = self
                .post_json(
                    &self.endpoints.embeddings,
                    auth.clone(),
                    self.timeouts.read,
                    &body,
                )
                .await?;
            #[derive(Deserialize)]
            struct Answer {
                data: Vec<Datum>,
            }
            #[derive(Deserialize)]
            struct Datum {
                index: usize,
                embedding: Vec<f32>,
            }
            let mut answer: Answer = serde_json::from_slice(&bytes)
                .map_err(|e| UpstreamError::Malformed(describe_json_error("embeddings", &e)))?;
            answer.data.sort_by_key(|d| d.index);
            let in_order = answer.data.iter().enumerate().all(|(i, d)| d.index == i);
            if answer.data.len() != batch.len() || !in_order {
                return Err(UpstreamError::Malformed(format!(
                    "{} embeddings for {} inputs",
                    answer.data.len(),
                    batch.len()
                )));
            }
            let dim = out.first().map_or(answer.data[0].embedding.len(), Vec::len);
            if dim == 0 || answer.data.iter().any(|d| d.embedding.len() != dim) {
                return Err(UpstreamError::Malformed(
                    "embeddings of different dimensions".to_owned(),
                ));
            }
            out.extend(answer.data.into_iter().map(|d| d.embedding));
        }
        Ok(out)
    }
}

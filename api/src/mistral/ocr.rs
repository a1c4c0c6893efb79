//! Reading an attachment: a PDF or an image goes inline (as a `data:` URL, so Mistral
//! fetches nothing on anyone's behalf) to the OCR model, and the markdown of its pages comes
//! back in page order. Anything that is neither is refused before any request is made.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::SecretString;
use serde::Deserialize;

use super::client::{MistralClient, bearer};
use super::error::{UpstreamError, describe_json_error};

/// The OCR model every attachment is read with.
pub const OCR_MODEL: &str = "mistral-ocr-latest";

/// An attachment to read. `content_type` decides how it is sent: `application/pdf` as a
/// document, `image/*` as an image; anything else is refused before any request is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcrInput {
    pub content_type: String,
    pub bytes: Vec<u8>,
    pub file_name: Option<String>,
}

impl MistralClient {
    /// Reads a PDF or an image and returns the markdown of all its pages, in page order,
    /// separated by blank lines.
    pub async fn ocr(
        &self,
        api_key: &SecretString,
        input: OcrInput,
    ) -> Result<String, UpstreamError> {
        Ok(self.ocr_pages(api_key, input).await?.join("\n\n"))
    }

    /// Reads a PDF or an image and returns the markdown of each page, in page order (page
    /// numbers are the positions, from 1).
    pub async fn ocr_pages(
        &self,
        api_key: &SecretString,
        input: OcrInput,
    ) -> Result<Vec<String>, UpstreamError> {
        let auth = bearer(api_key)?;
        let mime = input
            .content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let data_url = |mime: &str| format!("data:{mime};base64,{}", B64.encode(&input.bytes));
        let document = if mime == "application/pdf" {
            serde_json::json!({
                "type": "document_url",
                "document_url": data_url(&mime),
                "document_name": input.file_name,
            })
        } else if is_image_type(&mime) {
            serde_json::json!({ "type": "image_url", "image_url": data_url(&mime) })
        } else {
            return Err(UpstreamError::BadRequest(
                "only PDF documents and images can be read".to_owned(),
            ));
        };
        let body = serde_json::json!({
            "model": OCR_MODEL,
            "document": document,
            "include_image_base64": false,
        });
        let bytes = self
            .post_json(&self.endpoints.ocr, auth, self.timeouts.ocr, &body)
            .await?;

        #[derive(Deserialize)]
        struct OcrResponse {
            pages: Vec<Page>,
        }
        #[derive(Deserialize)]
        struct Page {
            index: u64,
            markdown: String,
        }
        let mut parsed: OcrResponse = serde_json::from_slice(&bytes)
            .map_err(|e| UpstreamError::Malformed(describe_json_error("OCR answer", &e)))?;
        parsed.pages.sort_by_key(|p| p.index);
        Ok(parsed.pages.into_iter().map(|p| p.markdown).collect())
    }
}

fn is_image_type(mime: &str) -> bool {
    mime.strip_prefix("image/").is_some_and(|sub| {
        !sub.is_empty()
            && sub
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_types_are_recognised_and_nothing_else() {
        assert!(is_image_type("image/png"));
        assert!(is_image_type("image/webp"));
        assert!(!is_image_type("image/"));
        assert!(!is_image_type("image/png,evil"));
        assert!(!is_image_type("text/html"));
    }
}

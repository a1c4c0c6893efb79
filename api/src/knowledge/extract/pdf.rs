//! PDF checks before the file is sent to OCR: a PDF that is damaged or encrypted would only
//! fail upstream (after an upload and a bill), so it is refused here with a clear reason.
//! This is structural sniffing, not a PDF parser: Mistral OCR reads the content.

use memchr::memmem;

use super::document::ExtractError;

/// The PDF specification lets a header appear within the first 1024 bytes (some producers
/// put junk before it); readers such as pdf.js accept that too.
const HEADER_WINDOW: usize = 1024;
/// `%%EOF` may be followed by a few bytes of padding; Acrobat looks in the last 1024.
const EOF_WINDOW: usize = 1024;
/// How much of the trailer (or cross-reference stream dictionary) is inspected.
const TRAILER_WINDOW: usize = 4096;

pub(super) fn looks_like_pdf(bytes: &[u8]) -> bool {
    memmem::find(&bytes[..bytes.len().min(HEADER_WINDOW)], b"%PDF-").is_some()
}

/// Refuses PDFs without a header or end marker, and encrypted ones: an `/Encrypt` entry in
/// the trailer dictionary, or in the cross-reference stream dictionary that replaces it since
/// PDF 1.5 (found where `startxref` points).
pub(super) fn check(bytes: &[u8]) -> Result<(), ExtractError> {
    if !looks_like_pdf(bytes) {
        return Err(ExtractError::PdfMalformed("no %PDF- header"));
    }
    let tail_start = bytes.len().saturating_sub(EOF_WINDOW);
    if memmem::rfind(&bytes[tail_start..], b"%%EOF").is_none() {
        return Err(ExtractError::PdfMalformed(
            "no %%EOF end marker; the file may be truncated",
        ));
    }
    let trailer_start = bytes.len().saturating_sub(TRAILER_WINDOW);
    let tail = &bytes[trailer_start..];
    // The last trailer dictionary (incremental updates append new ones; the last one wins
    // and must repeat /Encrypt).
    if let Some(at) = memmem::rfind(tail, b"trailer")
        && memmem::find(&tail[at..], b"/Encrypt").is_some()
    {
        return Err(ExtractError::PdfEncrypted);
    }
    if let Some(offset) = startxref(tail) {
        if offset >= bytes.len() {
            return Err(ExtractError::PdfMalformed(
                "the cross-reference offset points past the end",
            ));
        }
        let window = &bytes[offset..bytes.len().min(offset + TRAILER_WINDOW)];
        // Only the dictionary, not the (compressed) stream that follows it.
        let dictionary = memmem::find(window, b"stream").map_or(window, |end| &window[..end]);
        if memmem::find(dictionary, b"/Encrypt").is_some() {
            return Err(ExtractError::PdfEncrypted);
        }
    }
    Ok(())
}

/// The byte offset after the last `startxref` keyword.
fn startxref(tail: &[u8]) -> Option<usize> {
    let at = memmem::rfind(tail, b"startxref")? + b"startxref".len();
    let digits: String = tail[at..]
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take_while(|b| b.is_ascii_digit())
        .map(|&b| b as char)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &[u8] = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n\
        xref\n0 1\n0000000000 65535 f \ntrailer\n<< /Size 1 /Root 1 0 R >>\nstartxref\n60\n%%EOF\n";

    #[test]
    fn a_well_formed_pdf_passes() {
        assert_eq!(check(PLAIN), Ok(()));
        let mut junk_first = b"\r\n\x00garbage".to_vec();
        junk_first.extend_from_slice(PLAIN);
        assert_eq!(check(&junk_first), Ok(()));
    }

    #[test]
    fn encrypted_pdf_is_refused() {
        let encrypted = b"%PDF-1.6\n1 0 obj\n<< /Type /Catalog >>\nendobj\n\
            trailer\n<< /Size 5 /Root 1 0 R /Encrypt 4 0 R /ID [<ab><cd>] >>\nstartxref\n9\n%%EOF\n";
        assert_eq!(check(encrypted), Err(ExtractError::PdfEncrypted));
    }

    #[test]
    fn encrypted_pdf_with_a_cross_reference_stream_is_refused() {
        let mut pdf = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n".to_vec();
        let offset = pdf.len();
        pdf.extend_from_slice(
            b"5 0 obj\n<< /Type /XRef /Size 6 /Root 1 0 R /Encrypt 3 0 R /Filter /FlateDecode /Length 4 >>\nstream\nxxxx\nendstream\nendobj\n",
        );
        pdf.extend_from_slice(format!("startxref\n{offset}\n%%EOF\n").as_bytes());
        assert_eq!(check(&pdf), Err(ExtractError::PdfEncrypted));
        // The same file without /Encrypt is fine: the test fails if detection is too eager.
        let clean = String::from_utf8(pdf)
            .unwrap()
            .replace("/Encrypt 3 0 R ", "");
        assert_eq!(check(clean.as_bytes()), Ok(()));
    }

    #[test]
    fn truncated_or_headerless_pdf_is_refused() {
        let truncated = &PLAIN[..PLAIN.len() - 8];
        assert!(matches!(
            check(truncated),
            Err(ExtractError::PdfMalformed(_))
        ));
        assert!(matches!(
            check(b"1 0 obj << >> endobj %%EOF"),
            Err(ExtractError::PdfMalformed(_))
        ));
        let wild = b"%PDF-1.4\ntrailer<<>>\nstartxref\n999999\n%%EOF";
        assert!(matches!(check(wild), Err(ExtractError::PdfMalformed(_))));
    }
}

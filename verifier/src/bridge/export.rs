//! `vouch bridge streamr export`: accepted envelopes as Streamr
//! storage-resend frames.
//!
//! A Streamr storage node answers `…/data/partitions/{p}/…?format=raw` with
//! 4-byte big-endian length-prefixed protobuf `StreamMessage` frames
//! (`subscribe/Resends.ts`, `utils/lengthPrefixedFrameUtils.ts`;
//! `@streamr/utils` exports `toLengthPrefixedFrame`). The export writes the
//! same framing, so tools that publish pre-signed messages with Streamr's
//! SDK (`publishRaw(convertBytesToStreamMessage(frame))`) can read it.

use std::io::Write;
use std::path::Path;

use vouch_schema::Envelope;

use crate::store::{LogReader, RecordKind};

use super::BridgeError;

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct ExportSummary {
    /// Frames written (one per accepted envelope).
    pub frames: u64,
    /// Log records skipped because they are not envelopes.
    pub other_records: u64,
    /// The log index after the last record read: `--from` for the next export.
    pub next_index: u64,
}

/// One storage-resend frame: `u32be(len) ‖ StreamMessage protobuf`.
pub fn frame(envelope: &Envelope) -> Vec<u8> {
    let proto = envelope.to_streamr_bytes();
    let mut out = Vec::with_capacity(4 + proto.len());
    // An envelope is at most 64 KiB, so its length fits in u32.
    out.extend_from_slice(&(proto.len() as u32).to_be_bytes());
    out.extend_from_slice(&proto);
    out
}

/// Writes every envelope committed in the log at `dir`, from record `from`, to `out`.
pub fn export(dir: &Path, from: u64, out: &mut impl Write) -> Result<ExportSummary, BridgeError> {
    let mut reader = LogReader::open(dir, from)?;
    let mut summary = ExportSummary { next_index: from, ..Default::default() };
    for record in reader.by_ref() {
        let record = record?;
        summary.next_index = record.position.index + 1;
        if record.kind != RecordKind::Envelope {
            summary.other_records += 1;
            continue;
        }
        let envelope = Envelope::decode(&record.payload).map_err(|source| {
            BridgeError::NotAnEnvelope { index: record.position.index, source }
        })?;
        out.write_all(&frame(&envelope)).map_err(BridgeError::Io)?;
        summary.frames += 1;
    }
    summary.next_index = summary.next_index.max(reader.next_index());
    out.flush().map_err(BridgeError::Io)?;
    Ok(summary)
}

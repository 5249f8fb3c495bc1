//! Reading capture files: classic pcap (micro- or nanosecond, either byte
//! order) and pcapng (any number of sections and interfaces, each
//! interface's own link type and timestamp resolution), through
//! pcap-parser's streaming readers, so a capture of any size is read in
//! constant memory.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapBlockOwned, PcapError};
use serde::Serialize;

/// One captured frame.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Capture time since the Unix epoch, as the capturing host's clock
    /// said.
    pub time: Duration,
    /// Its link type (see [`super::decode::link_type`]).
    pub link_type: u32,
    /// The captured bytes (possibly cut at the snap length).
    pub data: &'a [u8],
}

/// The file's container format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Classic libpcap format.
    Pcap,
    /// pcapng.
    Pcapng,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Pcap => "pcap",
            Format::Pcapng => "pcapng",
        })
    }
}

/// What reading the whole file found, besides the frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSummary {
    /// Container format.
    pub format: Format,
    /// Frames handed to the callback.
    pub frames: u64,
    /// Why reading stopped before the end of the file, if it did (a
    /// capture cut short while tcpdump was writing it, or corruption). The
    /// frames before that point were read.
    pub stopped_early: Option<String>,
}

/// A file that cannot be read as a capture at all.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file cannot be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file does not start like a pcap or pcapng file.
    #[error("{}: not a pcap or pcapng capture ({why})", path.display())]
    NotACapture {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        why: String,
    },
}

/// Bytes read before handing the file to the reader: more than any file
/// header (the pcapng section header with its options included).
const HEAD_LEN: usize = 64 << 10;
/// Reading buffer; grown (up to [`MAX_BLOCK`]) for larger blocks.
const INITIAL_BUFFER: usize = 1 << 20;
/// No real frame or pcapng block is this large; a length field claiming
/// more is corruption.
const MAX_BLOCK: usize = 64 << 20;

/// Per pcapng interface: link type and timestamp units.
#[derive(Debug, Clone, Copy)]
struct Interface {
    link_type: u32,
    /// Timestamp units per second.
    units_per_sec: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset_secs: i64,
}

/// Reads the capture at `path`, calling `each` for every frame in file
/// order. Errors only when the file cannot be opened or is not a capture;
/// a file that ends mid-record or turns corrupt part-way is reported in
/// [`FileSummary::stopped_early`] after the frames before that point.
pub fn read_file(path: &Path, each: impl FnMut(Frame<'_>)) -> Result<FileSummary, CaptureError> {
    let file = File::open(path).map_err(|source| CaptureError::Io {
        path: path.to_owned(),
        source,
    })?;
    read(file, path, each)
}

/// As [`read_file`], from any reader; `path` only names it in errors.
pub fn read<R: Read + Send>(
    mut input: R,
    path: &Path,
    each: impl FnMut(Frame<'_>),
) -> Result<FileSummary, CaptureError> {
    let not_a_capture = |why: String| CaptureError::NotACapture {
        path: path.to_owned(),
        why,
    };
    // Read the start ourselves: for a precise message, and so that the
    // reader's first read (which must hold the whole file header) gets it
    // in one piece.
    let mut head = vec![0u8; HEAD_LEN];
    let got = read_up_to(&mut input, &mut head).map_err(|source| CaptureError::Io {
        path: path.to_owned(),
        source,
    })?;
    head.truncate(got);
    let magic = head.get(..4).unwrap_or(&head);
    let format = match magic {
        [] => return Err(not_a_capture("the file is empty".into())),
        [0x0a, 0x0d, 0x0d, 0x0a] => Format::Pcapng,
        [0xd4, 0xc3, 0xb2, 0xa1]
        | [0xa1, 0xb2, 0xc3, 0xd4]
        | [0x4d, 0x3c, 0xb2, 0xa1]
        | [0xa1, 0xb2, 0x3c, 0x4d]
        | [0x34, 0xcd, 0xb2, 0xa1]
        | [0xa1, 0xb2, 0xcd, 0x34] => Format::Pcap,
        other => {
            return Err(not_a_capture(format!(
                "it starts with bytes {}",
                other
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )));
        }
    };
    let chained = std::io::Read::chain(std::io::Cursor::new(head), input);
    let mut reader = pcap_parser::create_reader(INITIAL_BUFFER, chained).map_err(|e| {
        not_a_capture(match e {
            PcapError::Incomplete(_) | PcapError::Eof | PcapError::UnexpectedEof => {
                format!("its {format} header is cut short")
            }
            other => format!("its {format} header does not parse: {other:?}"),
        })
    })?;
    Ok(drive(reader.as_mut(), format, each))
}

fn read_up_to(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while let Some(rest) = buf.get_mut(got..) {
        if rest.is_empty() {
            break;
        }
        match input.read(rest) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn drive(
    reader: &mut (dyn PcapReaderIterator + Send),
    format: Format,
    mut each: impl FnMut(Frame<'_>),
) -> FileSummary {
    let mut summary = FileSummary {
        format,
        frames: 0,
        stopped_early: None,
    };
    // Classic pcap: one link type and resolution for the whole file.
    let mut legacy: Option<(u32, bool)> = None;
    // pcapng: the current section's interfaces, in order of appearance.
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut buffer_len = INITIAL_BUFFER;
    // pcapng: the byte order of the current section.
    let mut big_endian = false;
    loop {
        let consumed_before = reader.consumed();
        if format == Format::Pcapng
            && let Some(len) = short_block(reader.data(), &mut big_endian)
        {
            summary.stopped_early = Some(format!(
                "unreadable record at byte {consumed_before}: a pcapng block of {len} bytes \
                 (every block has at least 12)"
            ));
            break;
        }
        let step = match reader.next() {
            Ok((offset, block)) => {
                let frame_time_link = match &block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        legacy = Some((h.network.0.cast_unsigned(), h.is_nanosecond_precision()));
                        None
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let (link_type, nanos) = legacy.unwrap_or((0, false));
                        let frac = if nanos {
                            Duration::from_nanos(u64::from(b.ts_usec))
                        } else {
                            Duration::from_micros(u64::from(b.ts_usec))
                        };
                        let time = Duration::from_secs(u64::from(b.ts_sec)) + frac;
                        Some((time, link_type, b.data))
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                        interfaces.clear();
                        None
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        interfaces.push(Interface {
                            link_type: idb.linktype.0.cast_unsigned(),
                            // An invalid resolution makes every timestamp
                            // of the interface 0 rather than garbage.
                            units_per_sec: idb.ts_resolution().unwrap_or(0),
                            offset_secs: idb.ts_offset(),
                        });
                        None
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let iface = usize::try_from(epb.if_id)
                            .ok()
                            .and_then(|i| interfaces.get(i));
                        iface.map(|i| {
                            let data = epb.data.get(..epb.caplen as usize).unwrap_or(epb.data);
                            (ng_time(epb.ts_high, epb.ts_low, i), i.link_type, data)
                        })
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        // No timestamp; always interface 0. The data is
                        // padded to 4 bytes: cut it to the packet's length.
                        let data = spb.data.get(..spb.origlen as usize).unwrap_or(spb.data);
                        interfaces
                            .first()
                            .map(|i| (Duration::ZERO, i.link_type, data))
                    }
                    PcapBlockOwned::NG(_) => None,
                };
                if let Some((time, link_type, data)) = frame_time_link {
                    summary.frames += 1;
                    each(Frame {
                        time,
                        link_type,
                        data,
                    });
                }
                Step::Consume(offset)
            }
            Err(PcapError::Eof) => Step::Done(None),
            Err(PcapError::Incomplete(_)) => Step::Refill,
            Err(PcapError::BufferTooSmall) => Step::Grow,
            Err(PcapError::UnexpectedEof) => Step::Done(Some(format!(
                "the file ends inside a record at byte {consumed_before} (capture cut short?)"
            ))),
            Err(other) => Step::Done(Some(format!(
                "unreadable record at byte {consumed_before}: {}",
                describe(&other)
            ))),
        };
        match step {
            Step::Consume(offset) => reader.consume(offset),
            Step::Refill => {
                if let Err(e) = reader.refill() {
                    summary.stopped_early = Some(format!(
                        "read error after byte {consumed_before}: {}",
                        describe(&e)
                    ));
                    break;
                }
            }
            Step::Grow => {
                buffer_len *= 2;
                if buffer_len > MAX_BLOCK || !reader.grow(buffer_len) {
                    summary.stopped_early = Some(format!(
                        "a record at byte {consumed_before} claims to be larger than {} MiB",
                        MAX_BLOCK >> 20
                    ));
                    break;
                }
                if let Err(e) = reader.refill() {
                    summary.stopped_early = Some(format!(
                        "read error after byte {consumed_before}: {}",
                        describe(&e)
                    ));
                    break;
                }
            }
            Step::Done(why) => {
                summary.stopped_early = why;
                break;
            }
        }
    }
    summary
}

/// The length of the pcapng block at the start of `data` when it is under
/// the 12 bytes every block has, which pcap-parser 0.17 does not check for
/// some block types (it subtracts 12 from it); `None` when the length is
/// fine or not yet readable. A section header block sets `big_endian` from
/// its byte-order magic, which the lengths of its section follow.
fn short_block(data: &[u8], big_endian: &mut bool) -> Option<u32> {
    const SECTION_HEADER: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
    if data.get(..4) == Some(&SECTION_HEADER) {
        match data.get(8..12) {
            Some([0x1a, 0x2b, 0x3c, 0x4d]) => *big_endian = true,
            Some([0x4d, 0x3c, 0x2b, 0x1a]) => *big_endian = false,
            _ => {}
        }
    }
    let raw: [u8; 4] = data.get(4..8)?.try_into().ok()?;
    let len = if *big_endian {
        u32::from_be_bytes(raw)
    } else {
        u32::from_le_bytes(raw)
    };
    (len < 12).then_some(len)
}

enum Step {
    Consume(usize),
    Refill,
    Grow,
    Done(Option<String>),
}

fn describe<I>(e: &PcapError<I>) -> String {
    match e {
        PcapError::Eof => "end of file".into(),
        PcapError::BufferTooSmall => "record too large".into(),
        PcapError::UnexpectedEof => "unexpected end of file".into(),
        PcapError::ReadError => "read error".into(),
        PcapError::Incomplete(_) => "incomplete record".into(),
        PcapError::HeaderNotRecognized => "header not recognised".into(),
        PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind) => {
            format!("malformed ({kind:?})")
        }
    }
}

/// A pcapng timestamp: a 64-bit count of the interface's units.
fn ng_time(high: u32, low: u32, iface: &Interface) -> Duration {
    if iface.units_per_sec == 0 {
        return Duration::ZERO;
    }
    let ticks = (u64::from(high) << 32) | u64::from(low);
    let secs = ticks / iface.units_per_sec;
    let rest = ticks % iface.units_per_sec;
    let nanos = u128::from(rest) * 1_000_000_000 / u128::from(iface.units_per_sec);
    let secs = secs.saturating_add_signed(iface.offset_secs);
    Duration::from_secs(secs) + Duration::from_nanos(u64::try_from(nanos).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Frames = Vec<(Duration, u32, Vec<u8>)>;

    fn collect(bytes: &[u8]) -> Result<(FileSummary, Frames), CaptureError> {
        let mut frames = Vec::new();
        let s = read(bytes, Path::new("test.pcap"), |f| {
            frames.push((f.time, f.link_type, f.data.to_vec()));
        })?;
        Ok((s, frames))
    }

    /// A classic pcap file, little-endian, of the given records.
    fn pcap(nanos: bool, link_type: u32, records: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let magic: u32 = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        let mut out = magic.to_le_bytes().to_vec();
        out.extend(2u16.to_le_bytes());
        out.extend(4u16.to_le_bytes());
        out.extend([0; 8]);
        out.extend(262_144u32.to_le_bytes());
        out.extend(link_type.to_le_bytes());
        for (sec, frac, data) in records {
            out.extend(sec.to_le_bytes());
            out.extend(frac.to_le_bytes());
            out.extend((data.len() as u32).to_le_bytes());
            out.extend((data.len() as u32).to_le_bytes());
            out.extend(*data);
        }
        out
    }

    /// Found by the `capture_analysis` fuzz target: a big-endian pcapng
    /// file whose second block (a process information block) says it is 9
    /// bytes long made pcap-parser subtract 12 from 9.
    #[test]
    fn a_pcapng_block_shorter_than_12_bytes_stops_the_file_cleanly() {
        let mut file = vec![0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 28, 0x1a, 0x2b, 0x3c, 0x4d];
        file.extend([0, 1, 0, 0]); // version 1.0
        file.extend([0xff; 8]); // section length unknown
        file.extend([0, 0, 0, 28]);
        file.extend([0x80, 0, 0, 1, 0, 0, 0, 9, 1, 0, 0, 0, 0, 0, 0, 0]);
        let (s, f) = collect(&file).expect("a pcapng file");
        assert_eq!(s.format, Format::Pcapng);
        assert!(f.is_empty());
        let why = s.stopped_early.expect("stopped at the bad block");
        assert!(
            why.contains("byte 28") && why.contains("block of 9 bytes"),
            "{why}"
        );
    }

    #[test]
    fn classic_pcap_micro_and_nano() {
        let (s, f) = collect(&pcap(false, 1, &[(10, 250_000, b"abcd")])).unwrap();
        assert_eq!(s.format, Format::Pcap);
        assert_eq!(s.frames, 1);
        assert_eq!(s.stopped_early, None);
        assert_eq!(
            f,
            vec![(Duration::from_millis(10_250), 1, b"abcd".to_vec())]
        );
        let (_, f) = collect(&pcap(true, 276, &[(10, 250_000, b"x")])).unwrap();
        assert_eq!(f[0].0, Duration::from_nanos(10_000_250_000));
        assert_eq!(f[0].1, 276);
    }

    #[test]
    fn a_file_cut_short_keeps_its_whole_frames() {
        let mut bytes = pcap(false, 1, &[(1, 0, b"one"), (2, 0, b"two-two")]);
        bytes.truncate(bytes.len() - 3);
        let (s, f) = collect(&bytes).unwrap();
        assert_eq!(f.len(), 1);
        let why = s.stopped_early.expect("says it stopped early");
        assert!(why.contains("cut short"), "{why}");
    }

    #[test]
    fn not_a_capture_is_an_error_naming_the_file() {
        for bytes in [
            &b""[..],
            b"\x7fELF\x02\x01",
            b"ab",
            b"# ntp.keys\n1 MD5 x\n",
        ] {
            let e = collect(bytes).expect_err("not a capture");
            let text = e.to_string();
            assert!(
                text.starts_with("test.pcap: not a pcap or pcapng capture"),
                "{text}"
            );
        }
        // A pcap magic with the rest of the header missing.
        let e = collect(&0xa1b2_c3d4u32.to_le_bytes()).expect_err("short header");
        assert!(e.to_string().contains("cut short"), "{e}");
    }

    #[test]
    fn pcapng_timestamps_follow_the_interface_resolution() {
        let iface = |units| Interface {
            link_type: 1,
            units_per_sec: units,
            offset_secs: 0,
        };
        // 1.5 s in microseconds (the pcapng default) and in nanoseconds.
        assert_eq!(
            ng_time(0, 1_500_000, &iface(1_000_000)),
            Duration::from_millis(1500)
        );
        assert_eq!(
            ng_time(0, 1_500_000_000, &iface(1_000_000_000)),
            Duration::from_millis(1500)
        );
        let t = (1_795_315_275u64 * 1_000_000) + 118_687;
        assert_eq!(
            ng_time((t >> 32) as u32, t as u32, &iface(1_000_000)),
            Duration::from_micros(t)
        );
        assert_eq!(ng_time(1, 1, &iface(0)), Duration::ZERO);
    }
}

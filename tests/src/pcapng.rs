//! Capture files for tests of `mcast-client analyze`: the frames of a
//! classic pcap file, and a small pcapng writer (section header, one
//! interface description, enhanced packet blocks) written from the pcapng
//! specification, independently of the pcap-parser crate the analyzer
//! reads with, so that a shared misreading cannot hide.

use std::time::Duration;

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    /// Capture time since the Unix epoch.
    pub time: Duration,
    /// The frame bytes.
    pub data: Vec<u8>,
}

/// The link type and frames of a classic (libpcap) capture file.
pub fn classic_frames(pcap: &[u8]) -> Result<(u32, Vec<RawFrame>), String> {
    let magic = pcap.get(..4).ok_or("shorter than a pcap header")?;
    let (big, nanos) = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] => (false, false),
        [0xa1, 0xb2, 0xc3, 0xd4] => (true, false),
        [0x4d, 0x3c, 0xb2, 0xa1] => (false, true),
        [0xa1, 0xb2, 0x3c, 0x4d] => (true, true),
        _ => return Err("not a classic pcap file".into()),
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = pcap.get(at..at + 4)?.try_into().ok()?;
        Some(if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    let link_type = u32_at(20).ok_or("truncated pcap header")?;
    let mut frames = Vec::new();
    let mut at = 24;
    while at < pcap.len() {
        let (Some(sec), Some(frac), Some(caplen)) = (u32_at(at), u32_at(at + 4), u32_at(at + 8))
        else {
            return Err(format!("truncated record header at byte {at}"));
        };
        let start = at + 16;
        let end = start + caplen as usize;
        let data = pcap
            .get(start..end)
            .ok_or_else(|| format!("truncated record at byte {at}"))?;
        let frac = if nanos {
            Duration::from_nanos(u64::from(frac))
        } else {
            Duration::from_micros(u64::from(frac))
        };
        frames.push(RawFrame {
            time: Duration::from_secs(u64::from(sec)) + frac,
            data: data.to_vec(),
        });
        at = end;
    }
    Ok((link_type, frames))
}

/// How [`write_pcapng`] lays the file out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PcapngLayout {
    /// Big-endian section (the writer's byte order is the file's).
    pub big_endian: bool,
    /// Nanosecond timestamps (`if_tsresol` = 9); otherwise the default
    /// microseconds, with no `if_tsresol` option at all.
    pub nanos: bool,
}

struct Writer {
    out: Vec<u8>,
    big: bool,
}

impl Writer {
    fn u16(&mut self, v: u16) {
        let b = if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.out.extend(b);
    }
    fn u32(&mut self, v: u32) {
        let b = if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.out.extend(b);
    }
    fn padded(&mut self, bytes: &[u8]) {
        self.out.extend(bytes);
        self.out
            .extend(std::iter::repeat_n(0, (4 - bytes.len() % 4) % 4));
    }
    fn option(&mut self, code: u16, value: &[u8]) {
        self.u16(code);
        self.u16(u16::try_from(value.len()).unwrap_or(u16::MAX));
        self.padded(value);
    }
    /// A block: type, total length, body, total length again.
    fn block(&mut self, block_type: u32, body: impl FnOnce(&mut Writer)) {
        let start = self.out.len();
        self.u32(block_type);
        self.u32(0);
        body(self);
        let total = u32::try_from(self.out.len() - start + 4).unwrap_or(u32::MAX);
        self.u32(total);
        let len = if self.big {
            total.to_be_bytes()
        } else {
            total.to_le_bytes()
        };
        if let Some(slot) = self.out.get_mut(start + 4..start + 8) {
            slot.copy_from_slice(&len);
        }
    }
}

/// A pcapng file of one section and one interface of `link_type` holding
/// `frames`.
pub fn write_pcapng(link_type: u32, frames: &[RawFrame], layout: PcapngLayout) -> Vec<u8> {
    let mut w = Writer {
        out: Vec::new(),
        big: layout.big_endian,
    };
    // Section header block.
    w.block(0x0A0D_0D0A, |w| {
        w.u32(0x1A2B_3C4D);
        w.u16(1);
        w.u16(0);
        // Section length unknown (-1).
        w.u32(u32::MAX);
        w.u32(u32::MAX);
        w.option(4, b"mcast-tests pcapng writer"); // shb_userappl
        w.option(0, &[]);
    });
    // Interface description block.
    w.block(1, |w| {
        w.u16(u16::try_from(link_type).unwrap_or(u16::MAX));
        w.u16(0);
        w.u32(262_144);
        w.option(2, b"br0"); // if_name
        if layout.nanos {
            w.option(9, &[9]); // if_tsresol: 10^-9
        }
        w.option(0, &[]);
    });
    for f in frames {
        let ticks: u64 = if layout.nanos {
            u64::try_from(f.time.as_nanos()).unwrap_or(u64::MAX)
        } else {
            u64::try_from(f.time.as_micros()).unwrap_or(u64::MAX)
        };
        w.block(6, |w| {
            w.u32(0);
            w.u32((ticks >> 32) as u32);
            w.u32(ticks as u32);
            let len = u32::try_from(f.data.len()).unwrap_or(u32::MAX);
            w.u32(len);
            w.u32(len);
            w.padded(&f.data);
        });
    }
    w.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcapng_blocks_have_matching_lengths() {
        let frames = [RawFrame {
            time: Duration::from_micros(1_500_001),
            data: vec![1, 2, 3, 4, 5],
        }];
        let file = write_pcapng(1, &frames, PcapngLayout::default());
        // SHB, IDB, EPB: walk them by their length fields.
        let mut at = 0;
        let mut types = Vec::new();
        while at < file.len() {
            let t = u32::from_le_bytes(file[at..at + 4].try_into().unwrap());
            let len = u32::from_le_bytes(file[at + 4..at + 8].try_into().unwrap()) as usize;
            let len2 = u32::from_le_bytes(file[at + len - 4..at + len].try_into().unwrap());
            assert_eq!(len, len2 as usize);
            assert_eq!(len % 4, 0);
            types.push(t);
            at += len;
        }
        assert_eq!(types, vec![0x0A0D_0D0A, 1, 6]);
        // EPB timestamp: 1_500_001 us.
        let epb = &file[file.len() - 40..];
        assert_eq!(
            u32::from_le_bytes(epb[16..20].try_into().unwrap()),
            1_500_001
        );
    }
}

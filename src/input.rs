//! Reading the files an operator names (plugin, job file, secrets) safely.
//!
//! A FIFO or a device in place of a file would block keyrot or feed it
//! without end. [`read_regular`] opens without blocking, checks the opened
//! handle (not the path, which could change in between) is a regular file,
//! and reads at most a given size; [`open_regular`] does the same checks
//! and leaves the reading to the caller.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Reads the regular file at `path`, refusing FIFOs, devices, sockets and
/// directories, and files over `max_bytes` (when given).
pub fn read_regular(path: &Path, max_bytes: Option<u64>) -> io::Result<Vec<u8>> {
    let file = open_regular(path)?;
    let mut bytes = Vec::new();
    match max_bytes {
        Some(max) => {
            file.take(max + 1).read_to_end(&mut bytes)?;
            if bytes.len() as u64 > max {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("larger than {}", human_size(max)),
                ));
            }
        }
        None => {
            let mut file = file;
            file.read_to_end(&mut bytes)?;
        }
    }
    Ok(bytes)
}

/// Opens the regular file at `path` for reading, refusing FIFOs, devices,
/// sockets and directories; the checks are on the opened handle.
pub fn open_regular(path: &Path) -> io::Result<File> {
    // O_NONBLOCK: opening a FIFO with no writer would otherwise wait
    // forever. It changes nothing for a regular file.
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        let what = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_dir() {
            "a directory"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a file"
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what}, not a regular file"),
        ));
    }
    Ok(file)
}

/// Reads a regular UTF-8 text file of at most `max_bytes`.
pub fn read_regular_text(path: &Path, max_bytes: u64) -> io::Result<String> {
    String::from_utf8(read_regular(path, Some(max_bytes))?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_regular_files_within_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "abc").unwrap();
        assert_eq!(read_regular(&path, Some(3)).unwrap(), b"abc");
        let err = read_regular(&path, Some(2)).unwrap_err().to_string();
        assert!(err.contains("larger than 2 bytes"), "{err}");
    }

    #[test]
    fn refuses_fifos_devices_and_directories_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let err = read_regular(&fifo, None).unwrap_err().to_string();
        assert!(err.contains("a FIFO"), "{err}");
        let err = read_regular(Path::new("/dev/zero"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("a device"), "{err}");
        let err = read_regular(dir.path(), None).unwrap_err().to_string();
        assert!(err.contains("a directory"), "{err}");
    }
}

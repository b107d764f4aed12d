//! The file under the store: redb's own file backend, with a switch that makes every write fail
//! as a full disk does, so that tests can drive the store through a storage fault and back
//! without filling a real disk ([`Faults`]).

use std::io;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

/// A switch for injected storage faults, shared by a test and the store it opened
/// ([`super::Store::open_with_faults`]).
#[derive(Debug, Default)]
pub struct Faults {
    fail_writes: AtomicBool,
}

impl Faults {
    /// While `on`, every write, resize and sync of the file fails with "no space left".
    pub fn fail_writes(&self, on: bool) {
        self.fail_writes.store(on, Ordering::SeqCst);
    }

    fn check(&self) -> io::Result<()> {
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "No space left on device (injected)",
            ));
        }
        Ok(())
    }
}

/// redb's file backend, consulting [`Faults`] before each write when a test set them.
#[derive(Debug)]
pub(super) struct Backend {
    file: FileBackend,
    faults: Option<Arc<Faults>>,
}

impl Backend {
    pub(super) fn new(
        file: std::fs::File,
        faults: Option<Arc<Faults>>,
    ) -> Result<Backend, redb::DatabaseError> {
        Ok(Backend {
            file: FileBackend::new(file)?,
            faults,
        })
    }

    fn check(&self) -> io::Result<()> {
        match &self.faults {
            Some(f) => f.check(),
            None => Ok(()),
        }
    }
}

impl StorageBackend for Backend {
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.file.read(offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.check()?;
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.check()?;
        self.file.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.check()?;
        self.file.write(offset, data)
    }

    fn close(&self) -> io::Result<()> {
        self.file.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.file.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.query_lock_range(start, end)
    }
}

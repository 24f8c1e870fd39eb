//! [`SharedError`]: a typed error source that a `Clone + Eq` error enum can hold.

use std::error::Error;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A typed error kept as the source of an error enum that must stay
/// `Clone` and `Eq`.
///
/// Several Vouch error enums are cloned (a transport's last result is handed
/// to every caller, a refresher keeps its last failure) and compared (tests
/// match whole errors), while the errors they wrap (`io::Error`,
/// `serde_json::Error`, alloy's) are neither. Keeping the source behind an
/// [`Arc`] makes it cloneable without turning it into a message. Two
/// `SharedError`s are equal when their messages are: the equality these enums
/// had when they held the message as a `String`.
///
/// It adds nothing to an error chain: [`Display`](fmt::Display), `Debug` and
/// [`Error::source`] are the wrapped error's. Reach the typed error with
/// [`Deref`] (or [`SharedError::get`]), e.g. after downcasting an enum's
/// `source()` to `SharedError<io::Error>`.
pub struct SharedError<E: ?Sized>(Arc<E>);

impl<E: Error + Send + Sync + 'static> SharedError<E> {
    /// Wraps `error`.
    pub fn new(error: E) -> SharedError<E> {
        SharedError(Arc::new(error))
    }
}

impl SharedError<dyn Error + Send + Sync> {
    /// Wraps `error` as a trait object, for a variant fed by several error types.
    pub fn new_dyn(
        error: impl Error + Send + Sync + 'static,
    ) -> SharedError<dyn Error + Send + Sync> {
        SharedError(Arc::new(error))
    }
}

impl<E: ?Sized> SharedError<E> {
    /// The wrapped error.
    pub fn get(&self) -> &E {
        &self.0
    }
}

impl<E: Error + Send + Sync + 'static> From<E> for SharedError<E> {
    fn from(error: E) -> SharedError<E> {
        SharedError::new(error)
    }
}

impl<E: ?Sized> Deref for SharedError<E> {
    type Target = E;

    fn deref(&self) -> &E {
        &self.0
    }
}

impl<E: ?Sized> Clone for SharedError<E> {
    fn clone(&self) -> SharedError<E> {
        SharedError(Arc::clone(&self.0))
    }
}

impl<E: ?Sized + fmt::Display> PartialEq for SharedError<E> {
    fn eq(&self, other: &SharedError<E>) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl<E: ?Sized + fmt::Display> Eq for SharedError<E> {}

impl<E: ?Sized + fmt::Display> fmt::Display for SharedError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl<E: ?Sized + fmt::Debug> fmt::Debug for SharedError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl<E: ?Sized + Error> Error for SharedError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Outer(#[source] SharedError<std::io::Error>);

    #[test]
    fn is_transparent_cloneable_and_equal_by_message() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let a = SharedError::new(io());
        let b = a.clone();
        assert_eq!(a, b);
        assert_eq!(a, SharedError::new(io()));
        assert_ne!(a, SharedError::new(std::io::Error::other("other")));
        assert_eq!(a.to_string(), "gone");
        assert_eq!(format!("{a:?}"), format!("{:?}", io()));
        assert_eq!(a.kind(), std::io::ErrorKind::NotFound);

        let outer = Outer(a);
        assert_eq!(outer.to_string(), "outer: gone");
        let source = outer.source().unwrap();
        let shared = source.downcast_ref::<SharedError<std::io::Error>>().unwrap();
        assert_eq!(shared.get().kind(), std::io::ErrorKind::NotFound);

        let dynamic = SharedError::new_dyn(io());
        assert_eq!(dynamic.clone(), dynamic);
        assert!(dynamic.get().downcast_ref::<std::io::Error>().is_some());
    }
}

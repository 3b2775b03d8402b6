//! The PaLa validator runtime (in progress).

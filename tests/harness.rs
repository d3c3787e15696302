//! Placeholder harness; replaced by the e2e suite.

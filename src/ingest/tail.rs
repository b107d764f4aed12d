//! `[[tail]]` file tailer (placeholder: being built).

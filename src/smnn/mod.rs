//! The S-MNN layer (see DESIGN §3).

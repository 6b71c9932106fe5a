//! Authentication that fails closed, reloads that cannot remove it, and secrets kept out of every output.

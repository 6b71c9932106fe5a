//! Slow and greedy clients: header, body and keep-alive deadlines, the connection cap.

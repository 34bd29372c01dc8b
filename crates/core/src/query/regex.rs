//! Parse regular expressions (`$regex` + `$options`, PCRE-style `\Q…\E`) → the `regex` crate's syntax.

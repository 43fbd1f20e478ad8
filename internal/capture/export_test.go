package capture

// GoInternals lets the HTTP tests (package capture_test) check error
// messages as the decoder tests do.
var GoInternals = goInternals

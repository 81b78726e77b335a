package serve

// NewHandler exposes newHandler to the tests.
var NewHandler = newHandler

// NewStreamHandler exposes newStreamHandler to the tests.
var NewStreamHandler = newStreamHandler

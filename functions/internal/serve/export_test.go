package serve

// NewHandler exposes newHandler to the tests.
var NewHandler = newHandler

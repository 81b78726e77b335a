package dynamostore

// WithStageItems sets the most counter items one stage holds, so that
// tests can make a batch need several stages without thousands of
// campaigns.
func WithStageItems(n int) AggregatorOption { return func(a *Aggregator) { a.stageItems = n } }

// Package dynamotest runs an in-process server that speaks DynamoDB's JSON
// protocol and the DynamoDB Streams API on one URL, for tests that drive
// the real AWS SDK clients without Docker or a cloud account.
//
// The tables are github.com/truora/minidyn's. Around it the server adds
// what it lacks:
//   - the TTL operations and the ACTIVE table status, so that the
//     create-table path and the store's readiness check run unchanged;
//   - table streams: a table created or updated with a StreamSpecification
//     gets one, and every item change the server applies becomes a stream
//     record, served through ListStreams, DescribeStream, GetShardIterator
//     and GetRecords with DynamoDB's shard and sequence-number behaviour;
//     Reshard splits a stream's shards as DynamoDB does when partitions
//     split;
//   - request accounting (Usage): every request, and the read and write
//     units DynamoDB would bill for it.
package dynamotest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/truora/minidyn/server"
)

// Region is the region that clients of the server use; any would do.
const Region = "us-east-1"

// The X-Amz-Target prefixes of the two APIs the server speaks.
const (
	dynamoDBService = "DynamoDB_20120810"
	streamsService  = "DynamoDBStreams_20120810"
)

// Server is a DynamoDB and DynamoDB Streams server for one test. It is safe
// for concurrent use. Item writes are serialised, each with the reads of
// its items before and after it, so that stream records hold exactly the
// images of each change; minidyn serialises every request anyway, so
// contention between transactions never shows.
//
// Usage bills requests as DynamoDB's on-demand mode does:
//   - an item's size is the UTF-8 bytes of its attribute names plus the
//     sizes of their values: a string's UTF-8 bytes, a number's one byte
//     per two significant digits plus one, a binary's raw bytes, 1 for a
//     Boolean or null, a list or map 3 bytes plus its elements at 1 byte
//     each more;
//   - a write of one item (PutItem, UpdateItem, DeleteItem, each request of
//     BatchWriteItem) costs one WRU per KB, rounded up, of the larger of
//     the item before and after it, at least 1; a write refused on its
//     condition costs the same for the item as it is, at least 1;
//   - TransactWriteItems costs twice that for each action, a
//     ConditionCheck or an action of a cancelled transaction included;
//   - GetItem, and each item of BatchGetItem, costs one RRU per 4 KB of the
//     item, rounded up, at least 1, whatever a projection leaves out; half
//     that if eventually consistent; TransactGetItems twice it;
//   - Query and Scan cost the same per 4 KB of all the items they return,
//     rounded up once per request (DynamoDB counts items a filter drops
//     too; the server does not).
//
// Other requests, failed ones and the Streams API cost no units.
type Server struct {
	// URL is the server's endpoint, for both APIs.
	URL string

	next   http.Handler // minidyn
	now    func() time.Time
	shards int

	// wmu serialises item writes with their reads before and after, and
	// table changes (create, update, delete) with everything: minidyn's
	// table map is not safe for a create beside a read. Reads of items and
	// tables share it.
	wmu sync.RWMutex

	mu      sync.Mutex // guards what follows
	tables  map[string]*table
	ttl     map[string]string // table -> TTL attribute
	streams []*stream         // every stream, in the order they were created
	counts  map[usageKey]Counts
}

// Option configures a Server.
type Option func(*Server)

// WithShards sets how many shards a new stream starts with; the default is
// 2. Each Reshard doubles them.
func WithShards(n int) Option {
	return func(s *Server) { s.shards = max(n, 1) }
}

// WithClock sets the clock that stamps stream records'
// ApproximateCreationDateTime and stream labels, and that ages shard
// iterators; the default is time.Now.
func WithClock(now func() time.Time) Option {
	return func(s *Server) { s.now = now }
}

// Start starts a new, empty server for the test and returns its URL. The
// server stops when the test ends.
func Start(t testing.TB) string {
	t.Helper()
	return StartServer(t).URL
}

// StartServer starts a new, empty server for the test. The server stops
// when the test ends.
func StartServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := NewServer(opts...)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// NewServer returns a server that is not listening, for a caller that
// serves it itself; its URL is empty.
func NewServer(opts ...Option) *Server {
	s := &Server{
		next:   server.NewServer(),
		now:    time.Now,
		shards: 2,
		tables: map[string]*table{},
		ttl:    map[string]string{},
		counts: map[usageKey]Counts{},
	}
	for _, opt := range opts {
		opt(s)
	}
	return s
}

// Reshard closes every open shard of the table's stream and opens two
// children of each, which split its partition-key hash range, as DynamoDB
// does when a partition splits. It fails if the table has no enabled
// stream.
func (s *Server) Reshard(tableName string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tables[tableName]
	if t == nil || t.stream == nil || !t.stream.enabled {
		return fmt.Errorf("dynamotest: reshard %s: the table has no enabled stream", tableName)
	}
	t.stream.reshard()
	return nil
}

// response is an answer of the server, ready to write.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (res response) write(w http.ResponseWriter) {
	for k, v := range res.header {
		w.Header()[k] = v
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	}
	// DynamoDB sends the body's CRC32, and the SDK checks it.
	w.Header().Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(res.body)), 10))
	w.WriteHeader(res.status)
	_, _ = w.Write(res.body)
}

// errorType is the error code of a failed response, without its namespace.
func (res response) errorType() string {
	if res.status == http.StatusOK {
		return ""
	}
	var e struct {
		Type string `json:"__type"`
	}
	_ = json.Unmarshal(res.body, &e)
	return e.Type[strings.LastIndex(e.Type, "#")+1:]
}

func jsonResponse(v any) response {
	b, err := json.Marshal(v)
	if err != nil {
		return apiError(http.StatusInternalServerError, "InternalServerError", err.Error())
	}
	return response{status: http.StatusOK, body: b}
}

// apiError is an error answer in the JSON protocol's shape, with the code
// that the SDKs map to their error types.
func apiError(status int, code, msg string) response {
	b, _ := json.Marshal(map[string]string{
		"__type":  "com.amazonaws.dynamodb.v20120810#" + code,
		"message": msg,
	})
	return response{status: status, body: b}
}

func validation(format string, args ...any) response {
	return apiError(http.StatusBadRequest, "ValidationException", fmt.Sprintf(format, args...))
}

// ServeHTTP answers a request of either API, as the X-Amz-Target header
// names it, and counts it in Usage.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	service, op, _ := strings.Cut(r.Header.Get("X-Amz-Target"), ".")
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var res response
	var c Counts
	if service == streamsService {
		res = s.serveStreams(op, body)
	} else {
		res, c = s.serveDynamoDB(op, body)
	}
	c.Requests = 1
	if res.status != http.StatusOK {
		c.Errors = 1
	}
	s.count(callerOf(r), op, c)
	res.write(w)
}

func (s *Server) serveDynamoDB(op string, body []byte) (response, Counts) {
	switch op {
	case "UpdateTimeToLive", "DescribeTimeToLive":
		return s.timeToLive(op, body), Counts{}
	case "CreateTable":
		return s.createTable(body), Counts{}
	case "UpdateTable":
		return s.updateTable(body), Counts{}
	case "DeleteTable":
		return s.deleteTable(body), Counts{}
	case "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems":
		return s.write(op, body)
	}
	s.wmu.RLock()
	defer s.wmu.RUnlock()
	switch op {
	case "DescribeTable":
		return s.describeTable(body), Counts{}
	case "GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems":
		return s.read(op, body)
	default:
		return s.call(op, body), Counts{}
	}
}

// call hands a request of the DynamoDB API to minidyn.
func (s *Server) call(op string, body []byte) response {
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	req.Header.Set("X-Amz-Target", dynamoDBService+"."+op)
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	rec := httptest.NewRecorder()
	s.next.ServeHTTP(rec, req)
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

// getItem reads an item strongly consistently, straight from minidyn and
// unaccounted; nil if there is none.
func (s *Server) getItem(tableName string, key item) (item, error) {
	b, err := json.Marshal(map[string]any{"TableName": tableName, "Key": key, "ConsistentRead": true})
	if err != nil {
		return nil, err
	}
	res := s.call("GetItem", b)
	if res.status != http.StatusOK {
		return nil, fmt.Errorf("dynamotest: read %s: %s", tableName, res.body)
	}
	var out struct{ Item item }
	if err := json.Unmarshal(res.body, &out); err != nil {
		return nil, fmt.Errorf("dynamotest: read %s: %w", tableName, err)
	}
	return out.Item, nil
}

func newTransport(t testing.TB, wrap func(http.RoundTripper) http.RoundTripper) *http.Client {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(transport.CloseIdleConnections)
	var rt http.RoundTripper = transport
	if wrap != nil {
		rt = wrap(rt)
	}
	return &http.Client{Transport: rt}
}

func clientConfig(t testing.TB, wrap func(http.RoundTripper) http.RoundTripper) aws.Config {
	return aws.Config{
		Region:      Region,
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
		HTTPClient:  newTransport(t, wrap),
	}
}

// Client returns a client of the server at endpoint with its own connection
// pool, as a separate process would have. wrap, if not nil, wraps its
// transport, for example to inject faults or to Label its requests.
func Client(t testing.TB, endpoint string, wrap func(http.RoundTripper) http.RoundTripper) *dynamodb.Client {
	t.Helper()
	return dynamodb.NewFromConfig(clientConfig(t, wrap), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(endpoint) })
}

// StreamsClient returns a DynamoDB Streams client of the server at
// endpoint, as Client does for DynamoDB.
func StreamsClient(t testing.TB, endpoint string, wrap func(http.RoundTripper) http.RoundTripper) *dynamodbstreams.Client {
	t.Helper()
	return dynamodbstreams.NewFromConfig(clientConfig(t, wrap), func(o *dynamodbstreams.Options) { o.BaseEndpoint = aws.String(endpoint) })
}

// Env returns the environment that points the AWS SDK's default
// configuration at the server at endpoint, for both APIs, for code that
// loads it itself.
func Env(endpoint string) map[string]string {
	return map[string]string{
		"AWS_REGION":                        Region,
		"AWS_ACCESS_KEY_ID":                 "test",
		"AWS_SECRET_ACCESS_KEY":             "test",
		"AWS_ENDPOINT_URL_DYNAMODB":         endpoint,
		"AWS_ENDPOINT_URL_DYNAMODB_STREAMS": endpoint,
	}
}

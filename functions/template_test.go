package functions_test

import (
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/awslabs/goformation/v7"
	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/policies"
	"github.com/awslabs/goformation/v7/intrinsics"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/functions/internal/serve"
	"github.com/adcount/impression-counter/shared/apigwtest"
	"github.com/adcount/impression-counter/shared/config"
	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/httpapi"
)

// goformationMu serialises every call into goformation: its YAML
// processing writes a package-level map, so two parses at once race.
var goformationMu sync.Mutex

// parseTemplate parses template.yaml once.
var parseTemplate = sync.OnceValues(func() (*cloudformation.Template, error) {
	goformationMu.Lock()
	defer goformationMu.Unlock()
	return goformation.Open("../template.yaml")
})

func openTemplate(t *testing.T) *cloudformation.Template {
	t.Helper()
	tmpl, err := parseTemplate()
	require.NoError(t, err)
	return tmpl
}

// eventRoutes returns each HTTP function's routes, in ServeMux pattern
// syntax, from its HttpApi events. SAM writes path parameters as {id}, as
// ServeMux does, so a route key is the pattern, but for a greedy one,
// {file+}, which apigwtest.Pattern turns into ServeMux's {file...}. A stream function has no
// SAM event at all (TestTemplateStreamAggregation says why) and is left
// out.
func eventRoutes(t *testing.T, tmpl *cloudformation.Template) map[string][]string {
	t.Helper()
	routes := map[string][]string{}
	for name, fn := range tmpl.GetAllServerlessFunctionResources() {
		if isStreamFunction(name) {
			// Its stream comes through its event source mapping, never a
			// SAM event, which would attach a managed policy that reads
			// every stream; a schedule is all it may have
			// (TestTemplateStreamAggregation).
			for eventName, ev := range fn.Events {
				require.Equal(t, "Schedule", ev.Type, "%s.%s: a stream function's only SAM event is its schedule", name, eventName)
			}
			continue
		}
		require.NotEmpty(t, fn.Events, "%s has no events", name)
		for eventName, ev := range fn.Events {
			require.Equal(t, "HttpApi", ev.Type, "%s.%s", name, eventName)
			require.NotNil(t, ev.Properties, "%s.%s", name, eventName)
			var method, path, payload *string
			switch p := ev.Properties; {
			case p.HttpApiEvent != nil:
				method, path, payload = p.HttpApiEvent.Method, p.HttpApiEvent.Path, p.HttpApiEvent.PayloadFormatVersion
			case p.ApiEvent != nil:
				// goformation decodes the properties into the first event
				// type they fit, and an HttpApi event's fit an Api event.
				method, path = &p.ApiEvent.Method, &p.ApiEvent.Path
			}
			require.NotNil(t, method, "%s.%s names no method", name, eventName)
			require.NotNil(t, path, "%s.%s names no path", name, eventName)
			if payload != nil {
				assert.Equal(t, "2.0", *payload, "%s.%s", name, eventName)
			}
			routes[name] = append(routes[name], apigwtest.Pattern(strings.ToUpper(*method)+" "+*path))
		}
	}
	return routes
}

func TestTemplateRoutesMatchTheHandler(t *testing.T) {
	t.Parallel()
	tmpl := openTemplate(t)
	routes := eventRoutes(t, tmpl)
	served := httpapi.Routes()

	routedBy := map[string]string{}
	for fn, rs := range routes {
		for _, route := range rs {
			// Every route an event names is one the handler serves, with
			// the same method and the same parameter names.
			assert.Contains(t, served, route, "%s routes %q, which the handler does not serve", fn, route)
			if other, dup := routedBy[route]; dup {
				t.Errorf("%q is routed to both %s and %s", route, other, fn)
			}
			routedBy[route] = fn
		}
	}
	// And every route of the handler is routed by some event.
	for _, route := range served {
		assert.Contains(t, routedBy, route, "no function's events route %q", route)
	}
}

// logicalID is fn's logical ID in template.yaml, and so the name of its
// Makefile target build-<LogicalId>: IngestFunction for ingest.
func logicalID(fn serve.Function) string {
	name := string(fn)
	return strings.ToUpper(name[:1]) + name[1:] + "Function"
}

// isStreamFunction reports whether the template's function name is one of
// serve.StreamFunctions, which serve no route.
func isStreamFunction(name string) bool {
	for _, fn := range serve.StreamFunctions() {
		if logicalID(fn) == name {
			return true
		}
	}
	return false
}

func TestTemplateFunctionsAreBuiltByTheMakefile(t *testing.T) {
	t.Parallel()
	tmpl := openTemplate(t)
	fns := tmpl.GetAllServerlessFunctionResources()
	var want []string
	for _, fn := range serve.All() {
		want = append(want, logicalID(fn))
	}
	// The template deploys exactly the functions serve knows, each under
	// the logical ID its directory names.
	assert.ElementsMatch(t, want, slices.Collect(maps.Keys(fns)), "the template's functions")
	for _, fn := range serve.All() {
		name := logicalID(fn)
		resource, ok := fns[name]
		if !assert.True(t, ok, "template.yaml has no %s for ./functions/%s", name, fn) {
			continue
		}
		assert.Equal(t, "makefile", resource.AWSCloudFormationMetadata["BuildMethod"], "%s: sam build must run the Makefile", name)
		require.NotNil(t, resource.CodeUri, name)
		require.NotNil(t, resource.CodeUri.String, name)
		assert.Equal(t, ".", *resource.CodeUri.String, "%s: the Makefile sits at the root", name)

		// A dry run of the target sam build calls shows what it builds.
		cmd := exec.Command("make", "-n", "--no-print-directory", "build-"+name, "ARTIFACTS_DIR=/artifacts", "GOARCH=arm64")
		cmd.Dir = ".."
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "the Makefile has no target build-%s: %s", name, out)
		assert.Equal(t, string(fn), builtPackage(t, string(out)), "build-%s builds another function", name)
		for _, flag := range []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64", "-tags lambda.norpc", "-trimpath", `-ldflags "-s -w"`} {
			assert.Contains(t, string(out), flag, "build-%s", name)
		}
		assert.Contains(t, string(out), "/artifacts/bootstrap", "build-%s copies the bootstrap into ARTIFACTS_DIR", name)
	}
	entries, err := os.ReadDir(".")
	require.NoError(t, err)
	for _, e := range entries {
		// internal holds what the functions share, not a function.
		if e.IsDir() && e.Name() != "internal" {
			assert.Contains(t, serve.All(), serve.Function(e.Name()), "functions/%s is not a function serve knows", e.Name())
		}
	}
}

// TestTemplateFunctionsGroupRoutesByAccess checks that each function's
// API routes share one access class, which its IAM role, concurrency and
// blast radius follow (docs/lambda.md): ingest routes only the open
// impression routes, admin only routes behind the admin keys, and the
// dashboard's, which touch no table: the template routes to each function
// exactly the route table's routes of that function's classes, which are
// the only ones the function serves.
func TestTemplateFunctionsGroupRoutesByAccess(t *testing.T) {
	t.Parallel()
	routes := eventRoutes(t, openTemplate(t))
	for _, fn := range serve.Functions() {
		var want []string
		for _, rt := range httpapi.Table() {
			if slices.Contains(fn.Classes(), rt.Access) {
				want = append(want, rt.Pattern)
			}
		}
		require.NotEmpty(t, want, "%s serves no route", fn)
		assert.ElementsMatch(t, want, routes[logicalID(fn)], "%s must be routed exactly the %s routes", logicalID(fn), fn.Classes())
	}
}

// releaseBuild matches the Makefile's go build line for one function.
var releaseBuild = regexp.MustCompile(`go build .* -o \S+ \./functions/([a-z0-9-]+)`)

func builtPackage(t *testing.T, dryRun string) string {
	t.Helper()
	m := releaseBuild.FindStringSubmatch(dryRun)
	require.NotNil(t, m, "no go build of ./functions/... in:\n%s", dryRun)
	return m[1]
}

func TestTemplateSettings(t *testing.T) {
	t.Parallel()
	tmpl := openTemplate(t)
	apis := tmpl.GetAllServerlessHttpApiResources()
	require.Len(t, apis, 1, "one HTTP API")
	for name, fn := range tmpl.GetAllServerlessFunctionResources() {
		for _, ev := range fn.Events {
			if p := ev.Properties.HttpApiEvent; p != nil && p.ApiId != nil {
				assert.Contains(t, apis, *p.ApiId, "%s is routed by the template's HTTP API", name)
			}
		}
	}
	for _, name := range []string{"DedupTTL", "Store"} {
		assert.Contains(t, tmpl.Parameters, name)
	}
	assert.Contains(t, tmpl.Outputs, "ApiUrl")

	// Globals are SAM's, which goformation leaves unparsed; read them raw.
	raw, err := os.ReadFile("../template.yaml")
	require.NoError(t, err)
	for _, want := range []string{"Runtime: provided.al2023", "- arm64", "STORE: !Ref Store", "DEDUP_TTL: !Ref DedupTTL", "LAMBDA_PAYLOAD_VERSION: \"2.0\"", "StageName: $default"} {
		assert.Contains(t, string(raw), want)
	}
}

// rawTemplate is template.yaml with its intrinsic functions left as
// written, such as {"Ref": "ImpressionsTable"}: goformation resolves a Ref
// to a resource and every GetAtt to nothing, and leaves Globals unparsed.
type rawTemplate struct {
	Parameters map[string]rawParameter
	Globals    struct {
		Function struct {
			Timeout     int
			Environment rawEnvironment
		}
	}
	Resources map[string]struct {
		Type       string
		Properties struct {
			Timeout     *int
			Environment rawEnvironment
			// Policies is each policy as written: a policy name, a SAM
			// policy template or an inline document.
			Policies []any
		}
	}
}

type rawParameter struct {
	Type                  string
	Default               *string
	NoEcho                bool
	AllowedValues         []string
	AllowedPattern        string
	MinLength             *int
	MinValue, MaxValue    *int
	ConstraintDescription string
}

type rawEnvironment struct {
	// Variables maps a name to a string or an intrinsic function.
	Variables map[string]any
}

var parseRawTemplate = sync.OnceValues(func() (*rawTemplate, error) {
	b, err := os.ReadFile("../template.yaml")
	if err != nil {
		return nil, err
	}
	goformationMu.Lock()
	j, err := intrinsics.ProcessYAML(b, &intrinsics.ProcessorOptions{NoProcess: true})
	goformationMu.Unlock()
	if err != nil {
		return nil, err
	}
	var raw rawTemplate
	if err := json.Unmarshal(j, &raw); err != nil {
		return nil, err
	}
	return &raw, nil
})

func openRawTemplate(t *testing.T) *rawTemplate {
	t.Helper()
	raw, err := parseRawTemplate()
	require.NoError(t, err)
	return raw
}

// ref is how a Ref to name reads in a raw template.
func ref(name string) map[string]any { return map[string]any{"Ref": name} }

// tableName returns the logical ID of the template's one DynamoDB table.
func tableName(t *testing.T, tmpl *cloudformation.Template) string {
	t.Helper()
	tables := tmpl.GetAllDynamoDBTableResources()
	require.Len(t, tables, 1, "one DynamoDB table holds everything the store keeps")
	for name := range tables {
		return name
	}
	return ""
}

// functionEnv returns the environment a function starts with: the
// Globals' variables, overridden by the function's own, as SAM merges them.
func functionEnv(raw *rawTemplate, function string) map[string]any {
	env := maps.Clone(raw.Globals.Function.Environment.Variables)
	if env == nil {
		env = map[string]any{}
	}
	maps.Copy(env, raw.Resources[function].Properties.Environment.Variables)
	return env
}

func TestTemplateTableMatchesTheStoreSchema(t *testing.T) {
	t.Parallel()
	tmpl := openTemplate(t)
	name := tableName(t, tmpl)
	table := tmpl.GetAllDynamoDBTableResources()[name]
	want := dynamostore.Schema()

	var keys, wantKeys, attrs, wantAttrs []string
	for _, k := range table.KeySchema {
		keys = append(keys, k.AttributeName+" "+k.KeyType)
	}
	for _, k := range want.KeySchema {
		wantKeys = append(wantKeys, aws.ToString(k.AttributeName)+" "+string(k.KeyType))
	}
	for _, a := range table.AttributeDefinitions {
		attrs = append(attrs, a.AttributeName+" "+a.AttributeType)
	}
	for _, a := range want.AttributeDefinitions {
		wantAttrs = append(wantAttrs, aws.ToString(a.AttributeName)+" "+string(a.AttributeType))
	}
	// Key order matters: the first is the partition key.
	assert.Equal(t, wantKeys, keys, "key schema")
	assert.ElementsMatch(t, wantAttrs, attrs, "attribute definitions: the keys and nothing else")
	assert.Equal(t, string(want.BillingMode), aws.ToString(table.BillingMode), "on demand")
	assert.Nil(t, table.ProvisionedThroughput, "on demand has no provisioned throughput")
	assert.Empty(t, table.GlobalSecondaryIndexes, "the store queries no index")
	assert.Empty(t, table.LocalSecondaryIndexes, "the store queries no index")
	assert.Nil(t, table.TableName, "a generated name, so that stacks never collide")

	if assert.NotNil(t, table.TimeToLiveSpecification, "TTL removes expired dedup markers and hour counters") {
		assert.True(t, table.TimeToLiveSpecification.Enabled)
		assert.Equal(t, want.TTLAttribute, aws.ToString(table.TimeToLiveSpecification.AttributeName))
	}
	if assert.NotNil(t, table.PointInTimeRecoverySpecification, "point-in-time recovery") {
		assert.True(t, aws.ToBool(table.PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled))
	}
	// The counts are what customers are billed by: deleting or replacing
	// the stack must not delete them.
	assert.Equal(t, policies.DeletionPolicy("Retain"), table.AWSCloudFormationDeletionPolicy)
	assert.Equal(t, policies.UpdateReplacePolicy("Retain"), table.AWSCloudFormationUpdateReplacePolicy)
}

func TestTemplateEnvironmentReachesEveryFunction(t *testing.T) {
	t.Parallel()
	tmpl, raw := openTemplate(t), openRawTemplate(t)
	table := tableName(t, tmpl)
	// Each variable and the parameter or resource it must name.
	want := map[string]map[string]any{
		"STORE":          ref("Store"),
		"DEDUP_TTL":      ref("DedupTTL"),
		"DYNAMODB_TABLE": ref(table),
	}
	// What a deployment with the defaults gives each Ref; the admin key
	// has no default and stands for the one given at deploy time.
	resolved := map[string]string{table: "stack-ImpressionsTable-ABC123", "AdminApiKeys": "deploy-time-admin-key"}
	for name, p := range raw.Parameters {
		if p.Default != nil {
			resolved[name] = *p.Default
		}
	}
	functions := tmpl.GetAllServerlessFunctionResources()
	require.Len(t, functions, len(serve.All()))
	for name := range functions {
		env := functionEnv(raw, name)
		for variable, target := range want {
			assert.Equal(t, target, env[variable], "%s: %s", name, variable)
		}
		// Only the admin function holds the admin keys: the ingest
		// function is open to the internet and serves no admin route.
		wantKeys := []string{"deploy-time-admin-key"}
		if name == logicalID(serve.Admin) {
			assert.Equal(t, ref("AdminApiKeys"), env["ADMIN_API_KEYS"], "%s: ADMIN_API_KEYS", name)
		} else {
			assert.NotContains(t, env, "ADMIN_API_KEYS", "%s must not hold the admin keys", name)
			wantKeys = nil
		}
		// The variables the functions read are the ones config reads, and
		// the defaults make a DynamoDB deployment behind an admin key.
		cfg, err := config.Load(func(k string) string {
			switch v := env[k].(type) {
			case string:
				return v
			case map[string]any:
				target, _ := v["Ref"].(string)
				return resolved[target]
			}
			return ""
		})
		require.NoError(t, err, name)
		assert.Equal(t, config.StoreDynamoDB, cfg.Store, "%s: DynamoDB is the default store", name)
		assert.Equal(t, resolved[table], cfg.DynamoDBTable, name)
		assert.Equal(t, wantKeys, cfg.AdminKeys, name)
	}
}

func TestTemplateParameters(t *testing.T) {
	t.Parallel()
	raw := openRawTemplate(t)

	store := raw.Parameters["Store"]
	require.NotNil(t, store.Default)
	assert.Equal(t, config.StoreDynamoDB, *store.Default, "counts are kept in DynamoDB unless the deployer chooses otherwise")
	assert.ElementsMatch(t, []string{config.StoreDynamoDB, config.StoreMemory}, store.AllowedValues)

	// The store keeps no counter shards any more: the aggregator writes
	// each counter item once a batch.
	assert.NotContains(t, raw.Parameters, "CounterShards")

	keys := raw.Parameters["AdminApiKeys"]
	assert.True(t, keys.NoEcho, "CloudFormation must never show the admin keys")
	assert.Nil(t, keys.Default, "no default key: the deployer must choose one")
	if assert.NotNil(t, keys.MinLength) {
		assert.Positive(t, *keys.MinLength, "an empty key list is refused")
	}
	// One rule everywhere: the template refuses at deploy exactly the keys
	// that config.Load refuses at start, on Lambda and on the local server.
	assert.Equal(t, config.AdminKeysPattern, keys.AllowedPattern, "template.yaml's AllowedPattern is config.AdminKeysPattern")
	pattern, err := regexp.Compile(keys.AllowedPattern)
	require.NoError(t, err)
	cases := []struct {
		name, keys string
		ok         bool
	}{
		// One key, as from `openssl rand -hex 32`.
		{"OneHexKey", strings.Repeat("ab12", 16), true},
		// `openssl rand -base64 32` uses + / and = padding.
		{"Base64Key", "q2Vt+4bY/9Zr0sHk1mN3pL5wX7eT6uA8cD0fG2hJ4k=", true},
		// Two keys during a rotation.
		{"TwoKeys", "old-key-0123456789abcdef,new-key-0123456789abcdef", true},
		// Nothing: the functions would refuse to start.
		{"Empty", "", false},
		// Too short to resist guessing.
		{"ShortKey", "secret", false},
		// A short key hidden behind a long one.
		{"OneShortKeyOfTwo", "new-key-0123456789abcdef,short", false},
		// An empty key between commas.
		{"EmptyKeyBetweenCommas", "new-key-0123456789abcdef,,old-key-0123456789abcdef", false},
		// Spaces around a comma would be trimmed by the functions, but
		// are refused here so the value is unambiguous.
		{"SpaceAfterComma", "new-key-0123456789abcdef, old-key-0123456789abcdef", false},
		// A character a Bearer token cannot carry.
		{"Quote", `new-key-0123456789"abcdef`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.ok, pattern.MatchString(tc.keys) && len(tc.keys) >= *keys.MinLength)
			_, err := config.Load(func(k string) string { return map[string]string{"ADMIN_API_KEYS": tc.keys}[k] })
			if tc.ok {
				assert.NoError(t, err, "config.Load takes what the template takes")
			} else if tc.keys != "" && tc.name != "SpaceAfterComma" {
				// An unset list leaves the local server open, and spaces
				// around a key are forgiven; every other refusal agrees.
				assert.ErrorContains(t, err, "ADMIN_API_KEYS", "config.Load refuses what the template refuses")
			}
		})
	}
}

func TestTemplateTimeoutExceedsTheStoreTimeout(t *testing.T) {
	t.Parallel()
	raw := openRawTemplate(t)
	for name, r := range raw.Resources {
		if r.Type != "AWS::Serverless::Function" {
			continue
		}
		seconds := raw.Globals.Function.Timeout
		if r.Properties.Timeout != nil {
			seconds = *r.Properties.Timeout
		}
		// A store call that runs out of time answers 503 with Retry-After
		// only if Lambda has not ended the invocation first.
		assert.Greater(t, time.Duration(seconds)*time.Second, dynamostore.DefaultTimeout, name)
	}
}

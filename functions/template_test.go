package functions_test

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/awslabs/goformation/v7"
	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/httpapi"
)

// parseTemplate parses template.yaml once: goformation's parser is not safe
// for concurrent use.
var parseTemplate = sync.OnceValues(func() (*cloudformation.Template, error) {
	return goformation.Open("../template.yaml")
})

func openTemplate(t *testing.T) *cloudformation.Template {
	t.Helper()
	tmpl, err := parseTemplate()
	require.NoError(t, err)
	return tmpl
}

// eventRoutes returns each function's routes, in ServeMux pattern syntax,
// from its HttpApi events. SAM writes path parameters as {id}, as ServeMux
// does, so a route key is the pattern.
func eventRoutes(t *testing.T, tmpl *cloudformation.Template) map[string][]string {
	t.Helper()
	routes := map[string][]string{}
	for name, fn := range tmpl.GetAllServerlessFunctionResources() {
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
			routes[name] = append(routes[name], strings.ToUpper(*method)+" "+*path)
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

func TestTemplateFunctionsAreBuiltByTheMakefile(t *testing.T) {
	t.Parallel()
	tmpl := openTemplate(t)
	built := map[string]string{}
	for name, fn := range tmpl.GetAllServerlessFunctionResources() {
		assert.Equal(t, "makefile", fn.AWSCloudFormationMetadata["BuildMethod"], "%s: sam build must run the Makefile", name)
		require.NotNil(t, fn.CodeUri, name)
		require.NotNil(t, fn.CodeUri.String, name)
		assert.Equal(t, ".", *fn.CodeUri.String, "%s: the Makefile sits at the root", name)

		// A dry run of the target sam build calls shows what it builds.
		cmd := exec.Command("make", "-n", "--no-print-directory", "build-"+name, "ARTIFACTS_DIR=/artifacts", "GOARCH=arm64")
		cmd.Dir = ".."
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "the Makefile has no target build-%s: %s", name, out)
		dir := builtPackage(t, string(out))
		require.Contains(t, functionDirs, dir, "build-%s builds ./functions/%s, which is not a function", name, dir)
		if other, dup := built[dir]; dup {
			t.Errorf("./functions/%s is built for both %s and %s", dir, other, name)
		}
		built[dir] = name
		for _, flag := range []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64", "-tags lambda.norpc", "-trimpath", `-ldflags "-s -w"`} {
			assert.Contains(t, string(out), flag, "build-%s", name)
		}
		assert.Contains(t, string(out), "/artifacts/bootstrap", "build-%s copies the bootstrap into ARTIFACTS_DIR", name)
	}
	// Every function directory is deployed.
	for _, dir := range functionDirs {
		assert.Contains(t, built, dir, "no template function builds ./functions/%s", dir)
	}
	entries, err := os.ReadDir(".")
	require.NoError(t, err)
	for _, e := range entries {
		// internal holds what the functions share, not a function.
		if e.IsDir() && e.Name() != "internal" {
			assert.True(t, slices.Contains(functionDirs, e.Name()), "functions/%s is not in the tests' list of functions", e.Name())
		}
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

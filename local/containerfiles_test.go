package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/adcount/impression-counter/shared/config"
)

// The container files are run with a real engine by make container-test
// (local/containertest). These tests keep them consistent with the code
// in every make test, engine or not.

// composeOnlyAWS are the AWS SDK settings compose.yaml passes on for
// STORE=dynamodb: the README's DynamoDB table lists them. AWS_PROFILE is
// left out, as a container has no ~/.aws to read a profile from.
var composeOnlyAWS = []string{
	"AWS_REGION", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_DYNAMODB_STREAMS",
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
}

// TestComposeFile: compose.yaml's service takes every setting of the
// configuration table from the environment or .env, empty (the server's
// default) when unset, except PORT, which its port mapping fixes, and
// LAMBDA_PAYLOAD_VERSION, which only Lambda reads; DATA_DIR is its named
// volume, and the admin key is required. Its health check is the image's.
func TestComposeFile(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../compose.yaml")
	require.NoError(t, err)
	var doc struct {
		Services map[string]struct {
			Environment map[string]string
			Volumes     []string
			Healthcheck struct{ Test []string }
			Restart     string
			StopSignal  string `yaml:"stop_signal"`
		}
		Volumes map[string]any
	}
	require.NoError(t, yaml.Unmarshal(raw, &doc))
	svc, ok := doc.Services["impression-counter"]
	require.True(t, ok, "compose.yaml has the impression-counter service")

	want := slices.Clone(composeOnlyAWS)
	for _, s := range config.Settings {
		if s.Name != "PORT" && s.Name != "LAMBDA_PAYLOAD_VERSION" {
			want = append(want, s.Name)
		}
	}
	got := make([]string, 0, len(svc.Environment))
	for name, value := range svc.Environment {
		got = append(got, name)
		switch name {
		case "DATA_DIR":
			assert.Equal(t, "/data", value, "DATA_DIR is where the volume is mounted")
			continue
		case "ADMIN_API_KEYS":
			assert.True(t, strings.HasPrefix(value, "${ADMIN_API_KEYS:?"), "compose refuses to start without an admin key, got %q", value)
			continue
		}
		assert.Equal(t, "${"+name+":-}", value, "%s comes from the environment or .env, empty when unset", name)
	}
	assert.ElementsMatch(t, want, got)
	assert.Contains(t, svc.Volumes, "counts:/data")
	assert.Contains(t, doc.Volumes, "counts")
	assert.Equal(t, []string{"CMD", "/impression-counter", "healthcheck"}, svc.Healthcheck.Test)
	assert.Equal(t, "unless-stopped", svc.Restart)
	assert.Equal(t, "SIGTERM", svc.StopSignal)
}

// TestDockerfilesBuildOneImage: Dockerfile.multistage, which no test here
// can build (it needs Docker Hub), ends in the same final stage as
// Dockerfile, which make container-test builds and tests, but for where
// its files come from.
func TestDockerfilesBuildOneImage(t *testing.T) {
	t.Parallel()
	fromBuildStage := regexp.MustCompile(`--from=build (.*)/stage/`)
	finalStage := func(path string) []string {
		t.Helper()
		raw, err := os.ReadFile(path)
		require.NoError(t, err)
		_, stage, ok := strings.Cut(string(raw), "\nFROM scratch\n")
		require.True(t, ok, "%s has a FROM scratch stage", path)
		var lines []string
		for line := range strings.SplitSeq(stage, "\n") {
			if line = strings.TrimSpace(line); line != "" {
				lines = append(lines, fromBuildStage.ReplaceAllString(line, "$1"))
			}
		}
		return lines
	}
	tested := finalStage("../Dockerfile")
	assert.Equal(t, tested, finalStage("../Dockerfile.multistage"))
	assert.Contains(t, tested, `CMD ["/impression-counter", "healthcheck"]`)
	assert.Contains(t, tested, "USER 65532:65532")
}

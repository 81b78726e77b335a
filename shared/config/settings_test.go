package config_test

import (
	"bufio"
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/config"
)

// loadedByConfig are the settings Load reads; the others are read by one
// entry point, which tests its own defaults.
var loadedByConfig = map[string]bool{
	"DEDUP_TTL": true, "STORE": true, "DYNAMODB_TABLE": true,
	"ADMIN_API_KEYS": true, "LOG_LEVEL": true, "DATA_DIR": true, "FSYNC_INTERVAL": true,
	"FSYNC_BATCH": true, "SNAPSHOT_INTERVAL": true, "FILTER_BOTS": true, "DYNAMODB_AGGREGATOR": true,
}

// TestSettingsDefaultsAreLoadsDefaults: setting each variable to the default
// the table shows changes nothing, so the usage text and the README never
// promise a default that Load does not apply.
func TestSettingsDefaultsAreLoadsDefaults(t *testing.T) {
	t.Parallel()
	unset, err := config.Load(func(string) string { return "" })
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, s := range config.Settings {
		require.False(t, seen[s.Name], "%s is listed twice", s.Name)
		seen[s.Name] = true
		require.NotEmpty(t, s.Meaning, s.Name)
		if !loadedByConfig[s.Name] || s.Default == "" {
			continue
		}
		got, err := config.Load(func(k string) string {
			if k == s.Name {
				return s.Default
			}
			return ""
		})
		require.NoError(t, err, "%s=%s", s.Name, s.Default)
		assert.Equal(t, unset, got, "%s=%s is not what unset means", s.Name, s.Default)
	}
	for name := range loadedByConfig {
		assert.True(t, seen[name], "Load reads %s, which Settings does not list", name)
	}
}

// readmeRow is a row of the README's configuration table: | `NAME` | default | meaning |.
var readmeRow = regexp.MustCompile("^\\| `([A-Z0-9_]+)` \\| ([^|]*) \\|")

// TestREADMEConfigurationTableMatchesSettings: the README's table lists the
// same variables, in the same order and with the same defaults, as
// Settings. A default the README writes without code quotes ("none",
// "empty", "unset: ...") is no default.
func TestREADMEConfigurationTableMatchesSettings(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, section, found := bytes.Cut(readme, []byte("\n## Configuration\n"))
	require.True(t, found, "the README has a Configuration section")
	section, _, _ = bytes.Cut(section, []byte("\n## "))

	type row struct{ Name, Default string }
	var inREADME []row
	lines := bufio.NewScanner(bytes.NewReader(section))
	for lines.Scan() {
		m := readmeRow.FindStringSubmatch(lines.Text())
		if m == nil {
			continue
		}
		def := strings.TrimSpace(m[2])
		if strings.HasPrefix(def, "`") {
			def, _, _ = strings.Cut(strings.TrimPrefix(def, "`"), "`")
		} else {
			def = ""
		}
		inREADME = append(inREADME, row{m[1], def})
	}
	var want []row
	for _, s := range config.Settings {
		want = append(want, row{s.Name, s.Default})
	}
	assert.Equal(t, want, inREADME)
}

func TestWriteSettings(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	require.NoError(t, config.WriteSettings(&out))
	for _, s := range config.Settings {
		assert.Regexp(t, `(?m)^  `+s.Name+` +`+regexp.QuoteMeta(cmp(s.Default, "-"))+` +\S`, out.String(), "each variable with its default")
	}
}

func cmp(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// TestAdminKeysPatternIsLoadsRule: the exported pattern that template.yaml
// must use accepts exactly the values Load accepts.
func TestAdminKeysPatternIsLoadsRule(t *testing.T) {
	t.Parallel()
	re := regexp.MustCompile(config.AdminKeysPattern)
	for _, v := range []string{
		"0123456789abcdef", "0123456789abcdef,ABCDEFGHIJKLMNOP", "a+/=~._-bcdefghijklmnop",
		"0123456789abcde", ",", "0123456789abcdef,", "0123456789abcdef,short", "0123456789abcdef!",
	} {
		_, err := config.Load(func(k string) string {
			if k == "ADMIN_API_KEYS" {
				return v
			}
			return ""
		})
		assert.Equal(t, re.MatchString(v), err == nil, "%q: pattern and Load disagree", v)
	}
}

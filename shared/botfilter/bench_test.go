package botfilter

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// benchUAs are the User-Agents the benchmarks judge: browsers, which every
// counted impression pays for, bots that a literal catches, bots that need
// a regexp, and a long random string.
var benchUAs = []struct {
	name string
	ua   string
}{
	{"ChromeDesktop", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36"},
	{"SafariIPhone", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.6 Mobile/15E148 Safari/604.1"},
	{"Firefox", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:145.0) Gecko/20100101 Firefox/145.0"},
	{"AndroidChrome", "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Mobile Safari/537.36"},
	{"Googlebot", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"},
	{"Bingbot", "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36"},
	{"GPTBot", "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)"},
	{"Curl", "curl/8.5.0"},
	{"Random1KiB", randomUA(rand.New(rand.NewPCG(1, 2)), 1024)},
}

// BenchmarkIsBot is the cost of a verdict without the cache: the scan that
// every new User-Agent pays.
func BenchmarkIsBot(b *testing.B) {
	f := uncached(b)
	for _, c := range benchUAs {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.ua)))
			for b.Loop() {
				f.IsBot(c.ua)
			}
		})
	}
}

// BenchmarkIsBotCached is the cost of a verdict found in the cache, as for
// a User-Agent seen recently.
func BenchmarkIsBotCached(b *testing.B) {
	f := filter(b)
	for _, c := range benchUAs[:4] {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			f.IsBot(c.ua)
			for b.Loop() {
				f.IsBot(c.ua)
			}
		})
	}
}

// BenchmarkIsBotCacheMiss is the cost of a verdict that misses the cache
// and replaces an entry: a browser's User-Agent that differs each time in
// its last bytes.
func BenchmarkIsBotCacheMiss(b *testing.B) {
	f := filter(b)
	uas := make([]string, 1<<14)
	for i := range uas {
		uas[i] = fmt.Sprintf("%s %08d", benchUAs[0].ua, i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		f.IsBot(uas[i%len(uas)])
		i++
	}
}

// BenchmarkNaive is what IsBot replaces, on a browser's User-Agent, which
// no pattern matches: every pattern's regexp in turn, and all patterns as
// one alternation.
func BenchmarkNaive(b *testing.B) {
	ua := benchUAs[0].ua
	var res []*regexp.Regexp
	var all []string
	for _, e := range list(b) {
		res = append(res, regexp.MustCompile(e.Pattern))
		all = append(all, "(?:"+e.Pattern+")")
	}
	alternation := regexp.MustCompile(strings.Join(all, "|"))
	b.Run("EachRegexp", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, re := range res {
				if re.MatchString(ua) {
					b.Fatal(ua)
				}
			}
		}
	})
	b.Run("OneAlternation", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if alternation.MatchString(ua) {
				b.Fatal(ua)
			}
		}
	})
}

// BenchmarkNew is the cost of compiling the embedded list, paid once at
// startup (and in a Lambda's cold start).
func BenchmarkNew(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := New(); err != nil {
			b.Fatal(err)
		}
	}
}

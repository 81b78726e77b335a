package botfilter

import (
	"fmt"
	"slices"
)

// minKey is the shortest key the automaton spells out for a longer
// trigger; see keys.
const minKey = 4

// keys returns, for each trigger, the prefix of it that the automaton
// looks for: the shortest that no other trigger shares, and at least minKey
// bytes (or the whole trigger when shorter). The rest of a trigger is
// compared only when its key is seen. Spelling out whole triggers would
// double the automaton's table (1.60.0: 14,400 states against 3,600 and
// about 1 MB); a fixed prefix length would leave many triggers behind one
// key (35 behind "Goog"), each compared whenever it is seen, and a
// User-Agent made of that key repeated would cost 35 comparisons a key.
func keys(triggers []string) []string {
	sorted := slices.Clone(triggers)
	slices.Sort(sorted)
	shared := make(map[string]int, len(sorted))
	for i, t := range sorted {
		n := 0
		if i > 0 {
			n = commonPrefix(t, sorted[i-1])
		}
		if i+1 < len(sorted) {
			n = max(n, commonPrefix(t, sorted[i+1]))
		}
		shared[t] = n
	}
	out := make([]string, len(triggers))
	for i, t := range triggers {
		out[i] = t[:min(len(t), max(minKey, shared[t]+1))]
	}
	return out
}

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// matchFlag marks a transition into a state where some trigger prefix
// ends, so that the scan loop tests one bit per byte.
const matchFlag = 1 << 31

// automaton is an Aho–Corasick automaton compiled to a DFA: one table
// lookup per byte of the text, whatever the number of triggers, with no
// backtracking. The table has one row per trie state and one column per
// byte class; bytes that occur in no trigger share class 0, which always
// leads back to the root.
//
// It is hand-written rather than taken from a library because the filter
// needs every trigger that ends at each position (overlapping matches)
// without allocating, which the Go packages at hand do not offer.
type automaton struct {
	class  [256]uint8
	stride uint32   // columns per row: the number of byte classes
	trans  []uint32 // row-major; entries are premultiplied state offsets, or'd with matchFlag
	// outAt[state] indexes out: the triggers whose key ends in that
	// state, through its suffix (failure) links as well.
	outAt []uint32
	out   []uint32
}

// newAutomaton builds the automaton for keys; key i is reported as i.
// Every key must be non-empty. It fails if the table would not fit the
// 31 bits a transition has for its target.
func newAutomaton(keys []string) (*automaton, error) {
	a := &automaton{}
	var used [256]bool
	for _, k := range keys {
		for i := 0; i < len(k); i++ {
			used[k[i]] = true
		}
	}
	classes := 1
	for b := range used {
		if used[b] {
			a.class[b] = uint8(classes)
			classes++
		}
	}
	// When every byte value occurs in some key, no byte needs class 0:
	// number the classes by the bytes themselves.
	if classes > 256 {
		for b := range a.class {
			a.class[b] = uint8(b)
		}
		classes = 256
	}
	stride := classes
	a.stride = uint32(stride)

	// The trie, sparse: each state's children by class.
	type edge struct{ class, to uint32 }
	children := [][]edge{nil}
	own := [][]uint32{nil}
	for id, k := range keys {
		s := uint32(0)
	next:
		for i := 0; i < len(k); i++ {
			c := uint32(a.class[k[i]])
			for _, e := range children[s] {
				if e.class == c {
					s = e.to
					continue next
				}
			}
			to := uint32(len(own))
			children[s] = append(children[s], edge{c, to})
			children = append(children, nil)
			own = append(own, nil)
			s = to
		}
		own[s] = append(own[s], uint32(id))
	}
	states := len(own)
	if uint64(states)*uint64(stride) >= matchFlag {
		return nil, fmt.Errorf("botfilter: %d automaton states of %d byte classes are too many", states, stride)
	}

	// The DFA, breadth-first: a state's failure link is shallower, so the
	// failure state's row and outputs are complete when the state is
	// reached, and its row starts as a copy of that one. Entries hold
	// state numbers until the last pass.
	trans := make([]uint32, states*stride)
	outs := make([][]uint32, states)
	fail := make([]uint32, states)
	queue := make([]uint32, 1, states)
	for qi := 0; qi < len(queue); qi++ {
		u := queue[qi]
		row := trans[int(u)*stride : int(u+1)*stride]
		if u != 0 {
			copy(row, trans[int(fail[u])*stride:int(fail[u]+1)*stride])
			outs[u] = append(own[u], outs[fail[u]]...)
		}
		for _, e := range children[u] {
			if u != 0 {
				fail[e.to] = trans[int(fail[u])*stride+int(e.class)]
			}
			row[e.class] = e.to
			queue = append(queue, e.to)
		}
	}
	for i, v := range trans {
		t := v * uint32(stride)
		if len(outs[v]) > 0 {
			t |= matchFlag
		}
		trans[i] = t
	}
	a.trans = trans
	a.outAt = make([]uint32, states+1)
	for s := 0; s < states; s++ {
		a.outAt[s] = uint32(len(a.out))
		a.out = append(a.out, outs[s]...)
	}
	a.outAt[states] = uint32(len(a.out))
	return a, nil
}

// matches returns the keys that end in the state that transition t led to.
func (a *automaton) matches(t uint32) []uint32 {
	s := (t &^ matchFlag) / a.stride
	return a.out[a.outAt[s]:a.outAt[s+1]]
}

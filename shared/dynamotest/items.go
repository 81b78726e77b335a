package dynamotest

import (
	"hash/fnv"
	"math/big"
	"reflect"
	"slices"
	"strings"
)

// attr is one attribute value in the shape DynamoDB's JSON protocol gives
// it. omitzero keeps an empty list, map or binary value (non-nil, empty)
// while leaving out the members a value does not have.
type attr struct {
	S    *string         `json:"S,omitempty"`
	N    *string         `json:"N,omitempty"`
	B    []byte          `json:"B,omitzero"`
	BOOL *bool           `json:"BOOL,omitempty"`
	NULL *bool           `json:"NULL,omitempty"`
	SS   []string        `json:"SS,omitzero"`
	NS   []string        `json:"NS,omitzero"`
	BS   [][]byte        `json:"BS,omitzero"`
	L    []attr          `json:"L,omitzero"`
	M    map[string]attr `json:"M,omitzero"`
}

// item is an item, or a key, as the JSON protocol gives it.
type item map[string]attr

// keyElem is one element of a table's key schema.
type keyElem struct {
	AttributeName string
	KeyType       string // HASH or RANGE
}

// itemSize is the item's size as DynamoDB documents it for billing: the
// UTF-8 bytes of each attribute name plus the size of its value.
func itemSize(it item) int {
	n := 0
	for name, v := range it {
		n += len(name) + valueSize(v)
	}
	return n
}

// valueSize is the size of one value: a string's UTF-8 bytes; a number's
// one byte per two significant digits plus one; a binary's raw bytes; one
// byte for a Boolean or null; a set's elements; a list or map 3 bytes plus
// its elements (with a map's names), each element 1 byte more.
func valueSize(v attr) int {
	switch {
	case v.S != nil:
		return len(*v.S)
	case v.N != nil:
		return numberSize(*v.N)
	case v.B != nil:
		return len(v.B)
	case v.BOOL != nil, v.NULL != nil:
		return 1
	case v.SS != nil:
		n := 0
		for _, s := range v.SS {
			n += len(s)
		}
		return n
	case v.NS != nil:
		n := 0
		for _, s := range v.NS {
			n += numberSize(s)
		}
		return n
	case v.BS != nil:
		n := 0
		for _, b := range v.BS {
			n += len(b)
		}
		return n
	case v.L != nil:
		n := 3
		for _, e := range v.L {
			n += 1 + valueSize(e)
		}
		return n
	case v.M != nil:
		n := 3
		for k, e := range v.M {
			n += 1 + len(k) + valueSize(e)
		}
		return n
	}
	return 0
}

// numberSize is (significant digits + 1) / 2 + 1: leading and trailing
// zeros, the sign, the decimal point and any exponent do not count.
func numberSize(s string) int {
	s = strings.TrimLeft(s, "+-")
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		s = s[:i]
	}
	s = strings.ReplaceAll(s, ".", "")
	s = strings.Trim(s, "0")
	digits := max(len(s), 1)
	return (digits+1)/2 + 1
}

// writeUnits is what a standard write of an item of size bytes costs: one
// unit per KB or part of one, at least one.
func writeUnits(size int) int64 {
	return max(1, int64((size+1023)/1024))
}

// readUnits is what a strongly consistent read of size bytes costs: one
// unit per 4 KB or part of one, at least one.
func readUnits(size int) float64 {
	return float64(max(1, (size+4095)/4096))
}

// sameItem reports whether a and b hold the same values, as DynamoDB
// compares them to decide whether a write changed an item: numbers by
// value, sets regardless of order. Two absent items are the same.
func sameItem(a, b item) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		vb, ok := b[k]
		if !ok || !reflect.DeepEqual(canon(va), canon(vb)) {
			return false
		}
	}
	return true
}

// canon returns v with numbers in one spelling and sets sorted.
func canon(v attr) attr {
	switch {
	case v.N != nil:
		n := canonNumber(*v.N)
		v.N = &n
	case v.SS != nil:
		v.SS = slices.Sorted(slices.Values(v.SS))
	case v.NS != nil:
		ns := make([]string, len(v.NS))
		for i, s := range v.NS {
			ns[i] = canonNumber(s)
		}
		slices.Sort(ns)
		v.NS = ns
	case v.BS != nil:
		bs := slices.Clone(v.BS)
		slices.SortFunc(bs, func(x, y []byte) int { return strings.Compare(string(x), string(y)) })
		v.BS = bs
	case v.L != nil:
		l := make([]attr, len(v.L))
		for i, e := range v.L {
			l[i] = canon(e)
		}
		v.L = l
	case v.M != nil:
		m := make(map[string]attr, len(v.M))
		for k, e := range v.M {
			m[k] = canon(e)
		}
		v.M = m
	}
	return v
}

func canonNumber(s string) string {
	var r big.Rat
	if _, ok := r.SetString(s); !ok {
		return s
	}
	return r.RatString()
}

// project returns the attributes of it that the key schema names, and
// whether it has all of them.
func project(it item, schema []keyElem) (item, bool) {
	key := make(item, len(schema))
	for _, k := range schema {
		v, ok := it[k.AttributeName]
		if !ok {
			return nil, false
		}
		key[k.AttributeName] = v
	}
	return key, len(schema) > 0
}

// partitionHash hashes the partition key value of key, which decides the
// stream shard of the item's records.
func partitionHash(key item, schema []keyElem) uint64 {
	h := fnv.New64a()
	for _, k := range schema {
		if k.KeyType != "HASH" {
			continue
		}
		v := key[k.AttributeName]
		switch {
		case v.S != nil:
			_, _ = h.Write([]byte("S" + *v.S))
		case v.N != nil:
			_, _ = h.Write([]byte("N" + canonNumber(*v.N)))
		default:
			_, _ = h.Write(append([]byte("B"), v.B...))
		}
	}
	// FNV's high bits mix poorly for short, similar keys; fold them in so
	// that splitting the hash range by its high bits spreads keys.
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	return x
}

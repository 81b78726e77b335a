package adcount

import (
	"crypto/sha256"
	"encoding/binary"
)

// DedupKey identifies an impression's (campaign, user, ad) in 16 bytes, so
// that a store can remember millions of recent keys in bounded memory.
//
// It is the first 128 bits of SHA-256 over the three fields, each prefixed
// by its length so that ("ab","c") and ("a","bc") differ. A cryptographic
// hash keeps a client from crafting a key that collides with another user's
// impression and so suppresses it; 128 bits make an accidental collision
// among n live keys about n²/2¹²⁹ likely. The digest is stable across
// processes and versions, so stores may persist it. A filtered impression
// hashes one more byte, so that it never shares a key with the same
// impression counted: a bot's impression cannot suppress a real one.
type DedupKey [16]byte

// Key returns the impression's dedup key. It does not allocate for inputs
// within the validated limits.
func (imp Impression) Key() DedupKey {
	var buf [3*(4+MaxIDBytes) + 1]byte
	b := buf[:0]
	for _, s := range [...]string{imp.CampaignID, imp.UserID, imp.AdID} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	if imp.Filtered {
		b = append(b, 'F')
	}
	sum := sha256.Sum256(b)
	var k DedupKey
	copy(k[:], sum[:len(k)])
	return k
}

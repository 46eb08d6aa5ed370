package desired

import (
	"crypto/sha256"
	"encoding/binary"
)

// PortBase and PortRange bound the deterministic ports: every port is in [PortBase, PortBase+PortRange).
const (
	PortBase  = 9200
	PortRange = 600
)

// Port returns 9200 + (first 4 bytes of SHA-256(name), big-endian) % 600.
// It is pure and deterministic; two names can share a port (callers report collisions).
func Port(name string) int {
	sum := sha256.Sum256([]byte(name))
	return PortBase + int(binary.BigEndian.Uint32(sum[:4])%PortRange)
}

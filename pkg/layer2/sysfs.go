package layer2

import (
	"os"
	"strconv"
	"strings"
)

// hasMaster reports whether the interface is enslaved to a bridge or bond:
// such members never own addresses themselves.
func hasMaster(name string) bool {
	_, err := os.Lstat("/sys/class/net/" + name + "/master")
	return err == nil
}

// noARP reports whether the interface has IFF_NOARP set.
func noARP(name string) bool {
	b, err := os.ReadFile("/sys/class/net/" + name + "/flags")
	if err != nil {
		return false
	}
	v, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(string(b), "0x")), 16, 32)
	const iffNoARP = 0x80
	return err == nil && v&iffNoARP != 0
}

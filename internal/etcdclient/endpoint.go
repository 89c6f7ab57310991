package etcdclient

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// CheckEndpoint accepts an etcd endpoint as host:port, http://host:port or
// https://host:port, with a numeric port 1-65535 and nothing after it.
func CheckEndpoint(e string) error {
	hp := hostPort(e)
	if strings.Contains(hp, "://") {
		return fmt.Errorf("etcd endpoint %q: want host:port, http://host:port or https://host:port", e)
	}
	host, port, err := net.SplitHostPort(hp)
	if err != nil || host == "" {
		return fmt.Errorf("etcd endpoint %q: want host:port, e.g. 127.0.0.1:2379", e)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return fmt.Errorf("etcd endpoint %q: port %q: want a number 1-65535", e, port)
	}
	return nil
}

package node

import (
	"fmt"
	"net"
)

// InterfaceIP returns the first IPv4 address of the named interface, like
// the article's eth1 lookup.
func InterfaceIP(name string) (string, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return "", fmt.Errorf("node: interface %q: %w", name, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return "", fmt.Errorf("node: interface %q: cannot list addresses: %w", name, err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			return ipn.IP.String(), nil
		}
	}
	return "", fmt.Errorf("node: interface %q has no IPv4 address", name)
}

// DefaultIP returns the first IPv4 address of an interface that is up and not
// a loopback.
func DefaultIP() (string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return "", fmt.Errorf("node: cannot list interfaces: %w", err)
	}
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagLoopback != 0 {
			continue
		}
		if ip, err := InterfaceIP(ifi.Name); err == nil {
			return ip, nil
		}
	}
	return "", fmt.Errorf("node: no interface that is up has an IPv4 address; give --advertise or --interface")
}

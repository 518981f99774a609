// go_udp HOST PORT TEXT NAME: Go's own resolver and UDP sockets under
// `mayfly exec --egress`. It sends TEXT as one datagram to HOST:PORT
// (HOST through /etc/hosts) and prints "udp reply: ANSWER" or "udp: WHY",
// then looks NAME up with the pure-Go resolver (the DNS over UDP) and
// prints "lookup NAME: ADDRESSES" or "lookup NAME: WHY".
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"
)

func main() {
	host, port, text, name := os.Args[1], os.Args[2], os.Args[3], os.Args[4]
	conn, err := net.Dial("udp", net.JoinHostPort(host, port))
	if err != nil {
		fmt.Printf("udp: %v\n", err)
	} else {
		conn.SetDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 2048)
		if _, err = conn.Write([]byte(text)); err == nil {
			var n int
			if n, err = conn.Read(buf); err == nil {
				fmt.Printf("udp reply: %s\n", buf[:n])
			}
		}
		if err != nil {
			fmt.Printf("udp: %v\n", err)
		}
	}
	resolver := &net.Resolver{PreferGo: true}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addresses, err := resolver.LookupHost(ctx, name)
	if err != nil {
		fmt.Printf("lookup %s: %v\n", name, err)
	} else {
		fmt.Printf("lookup %s: %v\n", name, addresses)
	}
}

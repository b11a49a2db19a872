// Package node wires tapline's components into a running process: the
// configuration shared by every binary (flags and TAPLINE_* environment),
// the opening and closing of stores, buses and HTTP servers, and the demo
// seed. It is the one package besides the mains that imports the adapters.
package node

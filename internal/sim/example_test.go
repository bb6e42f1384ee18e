package sim_test

import (
	"fmt"
	"net"
	"time"

	"github.com/posbridge/posbridge/internal/hmac"
	"github.com/posbridge/posbridge/internal/sim"
)

// A test starts a simulator in-process on a loopback port, points the code
// under test at it, arms faults, and reads the ledger to prove what happened
// to the money.
func Example() {
	s, err := sim.New(sim.Config{
		Serial:      "P3SIM0001",
		Auth:        hmac.ModeHMAC,
		Credential:  hmac.Credential{Secret: "test-credential"},
		Currency:    "PEN",
		ThinkTime:   -1,          // no customer: charges decide at once
		VoidMinWait: time.Second, // instead of the vendor's minute
	})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go s.Serve(l) // LAN base URL: http://<l.Addr()>/terminal/v1

	// The next charge is approved, but its answer never arrives.
	if err := s.ArmFault(sim.Fault{Mode: sim.FaultDropAfterApprove, Endpoints: []string{"charge"}}); err != nil {
		panic(err)
	}

	// … the code under test runs against l.Addr() …

	l2 := s.Ledger()
	fmt.Println("double charges:", l2.Totals.DoubleCharges, "outstanding:", l2.Totals.Outstanding)
	fmt.Println("terminal calls:", s.State().TotalRequests)
	// Output:
	// double charges: 0 outstanding: 0
	// terminal calls: 0
}

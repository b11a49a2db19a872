package webhook_test

import (
	"fmt"
	"log"
	"time"

	"tapline/webhook"
)

// A sender signs a delivery with a Signer, here with the specification's
// reference secret, id, time and body; the receiver checks it with Verify.
func Example() {
	secret, err := webhook.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		log.Fatal(err)
	}
	sent := time.Unix(1614265330, 0)
	body := []byte(`{"test": 2432232314}`)

	signer := webhook.Signer{Secrets: []webhook.Secret{secret}}
	h, err := signer.Headers("msg_p5jXN8AQM9LWM0D4loKWxJek", sent, body)
	if err != nil {
		log.Fatal(err)
	}
	for _, name := range []string{webhook.HeaderID, webhook.HeaderTimestamp, webhook.HeaderSignature} {
		fmt.Printf("%s: %s\n", name, h.Get(name))
	}

	received := sent.Add(2 * time.Second)
	fmt.Println("verify:", webhook.Verify([]webhook.Secret{secret}, h, body, received, webhook.DefaultTolerance))
	fmt.Println("secret:", secret)
	// Output:
	// webhook-id: msg_p5jXN8AQM9LWM0D4loKWxJek
	// webhook-timestamp: 1614265330
	// webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
	// verify: <nil>
	// secret: whsec_[redacted]
}

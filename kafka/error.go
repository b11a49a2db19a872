package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	kafkago "github.com/segmentio/kafka-go"

	"tapline"
)

// translate wraps err from kafka-go with what, giving it a tapline code when
// the caller can act on it: EUNAVAILABLE when the cluster cannot take or
// serve the request now (unreachable brokers, retriable Kafka errors, a
// deadline that ran out waiting for them), ETOOLARGE for an oversized
// message, EINVALID for requests Kafka rejects as malformed. Both the tapline
// error and the original stay in the chain for errors.Is and errors.As.
func translate(ctx context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	var werrs kafkago.WriteErrors
	if errors.As(err, &werrs) {
		for _, e := range werrs {
			if e != nil {
				err = e
				break
			}
		}
	}
	code := ""
	var kerr kafkago.Error
	var tooLarge kafkago.MessageTooLargeError
	var nerr net.Error
	switch {
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		// The caller gave up; return its own error.
		return fmt.Errorf("%s: %w", what, err)
	case errors.Is(err, context.DeadlineExceeded):
		code = tapline.EUNAVAILABLE
	case errors.As(err, &tooLarge), errors.Is(err, kafkago.MessageSizeTooLarge),
		errors.Is(err, kafkago.RecordListTooLarge):
		code = tapline.ETOOLARGE
	case errors.Is(err, kafkago.InvalidTopic), errors.Is(err, kafkago.InvalidPartitionNumber),
		errors.Is(err, kafkago.InvalidReplicationFactor):
		code = tapline.EINVALID
	case errors.As(err, &kerr):
		if kerr.Temporary() {
			code = tapline.EUNAVAILABLE
		}
	case errors.As(err, &nerr),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrClosedPipe):
		code = tapline.EUNAVAILABLE
	}
	if code == "" {
		return fmt.Errorf("%s: %w", what, err)
	}
	// The tapline message may reach users, so it carries no internals; the
	// wrapped error has the details for the logs.
	return fmt.Errorf("%s: %w: %w", what, tapline.Errorf(code, "%s", publicMessage[code]), err)
}

var publicMessage = map[string]string{
	tapline.EUNAVAILABLE: "The message bus is unavailable; retry later.",
	tapline.ETOOLARGE:    "The message is too large for the message bus.",
	tapline.EINVALID:     "The message bus rejected the request as invalid.",
}

package worker

import (
	"encoding/json"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// handedRequest is a batch request that serve queued for the computing
// goroutine. It answers on the connection directly: micro's request must not be
// used after its handler returns (micro reads its outcome then, for the
// endpoint's stats), and the batch is answered later than that. The
// endpoint's $SRV.STATS therefore count the hand-off, not the compute;
// ferry reads its timings from the reply's headers, not from there.
type handedRequest struct {
	nc             *nats.Conn
	subject, reply string
	data           []byte
	headers        micro.Headers
}

func handOff(nc *nats.Conn, req micro.Request) *handedRequest {
	return &handedRequest{nc: nc, subject: req.Subject(), reply: req.Reply(), data: req.Data(), headers: req.Headers()}
}

func (r *handedRequest) Respond(data []byte, opts ...micro.RespondOpt) error {
	return r.publish(&nats.Msg{Data: data}, opts)
}

func (r *handedRequest) RespondJSON(v any, opts ...micro.RespondOpt) error {
	b, err := json.Marshal(v)
	if err != nil {
		return micro.ErrMarshalResponse
	}
	return r.Respond(b, opts...)
}

// Error answers as micro's own error reply does: the code and description
// in its headers.
func (r *handedRequest) Error(code, description string, data []byte, opts ...micro.RespondOpt) error {
	m := &nats.Msg{Header: nats.Header{micro.ErrorHeader: {description}, micro.ErrorCodeHeader: {code}}, Data: data}
	return r.publish(m, opts)
}

func (r *handedRequest) publish(m *nats.Msg, opts []micro.RespondOpt) error {
	if r.reply == "" {
		return nats.ErrMsgNoReply
	}
	for _, o := range opts {
		o(m)
	}
	m.Subject = r.reply
	return r.nc.PublishMsg(m)
}

func (r *handedRequest) Data() []byte           { return r.data }
func (r *handedRequest) Headers() micro.Headers { return r.headers }
func (r *handedRequest) Subject() string        { return r.subject }
func (r *handedRequest) Reply() string          { return r.reply }

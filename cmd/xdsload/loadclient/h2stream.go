package loadclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"

	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
)

// h2Stream is one delta ADS stream on an HTTP/2 connection of its own,
// driven by its proxy's goroutine alone: Recv reads frames off the socket
// and Send writes them, flow control and all. gRPC's client gave each
// connection a reader and a writer goroutine besides the proxy's, so every
// response and its ACK took three goroutine hand-offs and a yield; at 1,000
// proxies sharing two cores with the control plane, that load client's CPU
// per endpoint change was as large as the control plane's, and it is
// overhead a real Envoy, on a node of its own, never puts on the machine
// being measured. The protocol is what the server sees from any gRPC
// client: the same headers, one stream per connection, a 1 MiB window as
// istio-agent dials with, PING and SETTINGS answered, each response
// acknowledged as soon as it is read.
type h2Stream struct {
	nc    net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	codec leanCodec
	// maxRecv bounds one response message.
	maxRecv int

	// Send side: the windows the server grants, its largest frame.
	sendConn, sendStream int64
	initialSend          int64
	maxFrame             int

	// Receive side: the window we advertise, and what was consumed of it
	// since the last WINDOW_UPDATE.
	window                   int
	unackedConn, unackedStrm int

	// in holds the stream's DATA not yet returned as messages; consumed is
	// how much of its front Recv already returned.
	in       []byte
	consumed int

	hdec    *hpack.Decoder
	hdrBuf  []byte // a header block across CONTINUATION frames
	hdrEnd  bool   // the header block being read ends the stream
	status  string // grpc-status of the trailers, once read
	message string // grpc-message
	ended   bool
	scratch [9]byte
}

const (
	h2FrameData         = 0x0
	h2FrameHeaders      = 0x1
	h2FrameRSTStream    = 0x3
	h2FrameSettings     = 0x4
	h2FramePushPromise  = 0x5
	h2FramePing         = 0x6
	h2FrameGoAway       = 0x7
	h2FrameWindowUpdate = 0x8
	h2FrameContinuation = 0x9

	h2FlagEndStream  = 0x1
	h2FlagAck        = 0x1
	h2FlagEndHeaders = 0x4
	h2FlagPadded     = 0x8
	h2FlagPriority   = 0x20

	h2SettingInitialWindow = 0x4
	h2SettingMaxFrameSize  = 0x5

	h2DefaultWindow = 65535
	h2StreamID      = 1
	// h2MaxControl bounds the payload of a frame that is not DATA.
	h2MaxControl = 1 << 20
)

const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// h2Buffers holds the DATA buffers of streams between responses: an idle
// proxy holds none, and a 500 KB route table is read into a buffer that
// the last large response left.
var h2Buffers = sync.Pool{New: func() any { return new([]byte) }}

// dialH2Stream opens a connection to addr and a DeltaAggregatedResources
// stream on it. The connection is closed when ctx is done.
func dialH2Stream(ctx context.Context, addr string, codec leanCodec, window int32, maxRecv int) (*h2Stream, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &h2Stream{
		nc: nc, br: bufio.NewReaderSize(nc, 4<<10), bw: bufio.NewWriterSize(nc, 4<<10), codec: codec, maxRecv: maxRecv,
		sendConn: h2DefaultWindow, sendStream: h2DefaultWindow, initialSend: h2DefaultWindow, maxFrame: 16 << 10,
		window: int(window), hdec: hpack.NewDecoder(4096, nil),
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	if err := s.open(addr); err != nil {
		stop()
		nc.Close()
		return nil, err
	}
	return s, nil
}

func (s *h2Stream) open(authority string) error {
	s.bw.WriteString(h2Preface)
	var settings [6]byte
	binary.BigEndian.PutUint16(settings[0:], h2SettingInitialWindow)
	binary.BigEndian.PutUint32(settings[2:], uint32(s.window))
	s.writeFrame(h2FrameSettings, 0, 0, settings[:])
	if s.window > h2DefaultWindow {
		s.writeWindowUpdate(0, s.window-h2DefaultWindow)
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":path", deltaMethod}, {":authority", authority},
		{"content-type", "application/grpc"}, {"te", "trailers"}, {"user-agent", "xdsload-h2"},
	} {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			return err
		}
	}
	s.writeFrame(h2FrameHeaders, h2FlagEndHeaders, h2StreamID, hb.Bytes())
	return s.bw.Flush()
}

func (s *h2Stream) writeFrame(typ, flags byte, stream uint32, payload []byte) {
	s.writeFrameHeader(typ, flags, stream, len(payload))
	s.bw.Write(payload)
}

func (s *h2Stream) writeFrameHeader(typ, flags byte, stream uint32, length int) {
	h := s.scratch[:]
	h[0], h[1], h[2] = byte(length>>16), byte(length>>8), byte(length)
	h[3], h[4] = typ, flags
	binary.BigEndian.PutUint32(h[5:], stream&0x7fffffff)
	s.bw.Write(h)
}

func (s *h2Stream) writeWindowUpdate(stream uint32, n int) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(n)&0x7fffffff)
	s.writeFrame(h2FrameWindowUpdate, 0, stream, b[:])
}

// Close ends the stream and its connection.
func (s *h2Stream) Close() error {
	s.releaseIn()
	return s.nc.Close()
}

// SendMsg writes one request as a gRPC message, waiting (reading frames)
// while the server's windows are spent.
func (s *h2Stream) SendMsg(m any) error {
	data, err := s.codec.Marshal(m)
	if err != nil {
		return err
	}
	defer data.Free()
	var msg []byte
	if len(data) == 1 {
		msg = data[0].ReadOnlyData() // the codec's own buffer: no copy
	} else {
		msg = data.Materialize()
	}
	var prefix [5]byte
	binary.BigEndian.PutUint32(prefix[1:], uint32(len(msg)))
	head := prefix[:]
	for len(head)+len(msg) > 0 {
		n := int(min(int64(len(head)+len(msg)), s.sendConn, s.sendStream, int64(s.maxFrame)))
		if n < len(head) {
			n = 0 // the 5-byte prefix goes out in one frame
		}
		if n <= 0 {
			if err := s.bw.Flush(); err != nil {
				return err
			}
			if err := s.readFrame(); err != nil {
				return err
			}
			continue
		}
		body := n - len(head)
		s.writeFrameHeader(h2FrameData, 0, h2StreamID, n)
		s.bw.Write(head)
		s.bw.Write(msg[:body])
		head, msg = nil, msg[body:]
		s.sendConn -= int64(n)
		s.sendStream -= int64(n)
	}
	return s.bw.Flush()
}

// RecvMsg reads the next response into m (a *leanDelta, through the codec).
func (s *h2Stream) RecvMsg(m any) error {
	// What the previous message left is dropped now: the codec is done with it.
	if s.consumed > 0 {
		rest := copy(s.in, s.in[s.consumed:])
		s.in, s.consumed = s.in[:rest], 0
		if rest == 0 {
			s.releaseIn()
		}
	}
	for {
		if len(s.in) >= 5 {
			if s.in[0] != 0 {
				return status.Error(codes.Unimplemented, "xdsload-h2: compressed response")
			}
			size := int(binary.BigEndian.Uint32(s.in[1:5]))
			if size > s.maxRecv {
				return status.Errorf(codes.ResourceExhausted, "xdsload-h2: response of %d bytes, more than %d", size, s.maxRecv)
			}
			if len(s.in) >= 5+size {
				s.consumed = 5 + size
				return s.codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(s.in[5 : 5+size])}, m)
			}
		}
		if s.ended {
			return s.endError()
		}
		if err := s.readFrame(); err != nil {
			return err
		}
	}
}

// creditWindow gives the server back n bytes of DATA once a quarter of the
// window has come in, as gRPC does. Counting bytes as they arrive, not as
// messages are consumed, lets a message larger than the window through; the
// stream's goroutine reads only while it wants the next message, so what
// it buffers is bounded by one message.
func (s *h2Stream) creditWindow(n int) error {
	s.unackedConn += n
	s.unackedStrm += n
	if s.unackedConn < s.window/4 && s.unackedStrm < s.window/4 {
		return nil
	}
	s.writeWindowUpdate(0, s.unackedConn)
	s.writeWindowUpdate(h2StreamID, s.unackedStrm)
	s.unackedConn, s.unackedStrm = 0, 0
	return s.bw.Flush()
}

func (s *h2Stream) releaseIn() {
	if s.in == nil {
		return
	}
	b := s.in[:0]
	s.in, s.consumed = nil, 0
	h2Buffers.Put(&b)
}

func (s *h2Stream) endError() error {
	if s.status == "" {
		return status.Error(codes.Internal, "xdsload-h2: stream ended without grpc-status")
	}
	code, err := strconv.Atoi(s.status)
	if err != nil {
		return status.Errorf(codes.Internal, "xdsload-h2: grpc-status %q", s.status)
	}
	if code == 0 {
		return io.EOF
	}
	return status.Error(codes.Code(code), s.message)
}

// readFrame reads and handles one frame: DATA of the stream is appended to
// in; control frames are answered.
func (s *h2Stream) readFrame() error {
	h := s.scratch[:]
	if _, err := io.ReadFull(s.br, h); err != nil {
		return status.Errorf(codes.Unavailable, "xdsload-h2: %v", err)
	}
	length := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
	typ, flags := h[3], h[4]
	stream := binary.BigEndian.Uint32(h[5:]) & 0x7fffffff
	if typ == h2FrameData {
		return s.readData(length, flags, stream)
	}
	if length > h2MaxControl {
		return status.Errorf(codes.Internal, "xdsload-h2: frame type %d of %d bytes", typ, length)
	}
	p := make([]byte, length)
	if _, err := io.ReadFull(s.br, p); err != nil {
		return status.Errorf(codes.Unavailable, "xdsload-h2: %v", err)
	}
	switch typ {
	case h2FrameSettings:
		if flags&h2FlagAck != 0 {
			return nil
		}
		for ; len(p) >= 6; p = p[6:] {
			id, v := binary.BigEndian.Uint16(p), int64(binary.BigEndian.Uint32(p[2:]))
			switch id {
			case h2SettingInitialWindow:
				s.sendStream += v - s.initialSend
				s.initialSend = v
			case h2SettingMaxFrameSize:
				s.maxFrame = int(v)
			}
		}
		s.writeFrame(h2FrameSettings, h2FlagAck, 0, nil)
		return s.bw.Flush()
	case h2FramePing:
		if flags&h2FlagAck != 0 {
			return nil
		}
		s.writeFrame(h2FramePing, h2FlagAck, 0, p)
		return s.bw.Flush()
	case h2FrameWindowUpdate:
		if len(p) != 4 {
			return status.Error(codes.Internal, "xdsload-h2: bad WINDOW_UPDATE")
		}
		inc := int64(binary.BigEndian.Uint32(p) & 0x7fffffff)
		if stream == 0 {
			s.sendConn += inc
		} else if stream == h2StreamID {
			s.sendStream += inc
		}
		return nil
	case h2FrameHeaders, h2FrameContinuation:
		return s.readHeaders(typ, flags, stream, p)
	case h2FrameRSTStream:
		if stream == h2StreamID {
			code := uint32(0)
			if len(p) == 4 {
				code = binary.BigEndian.Uint32(p)
			}
			return status.Errorf(codes.Unavailable, "xdsload-h2: stream reset by the server (HTTP/2 error %d)", code)
		}
		return nil
	case h2FrameGoAway:
		// The server drains the connection: reconnect, as Envoy does when
		// its stream then ends.
		msg := ""
		if len(p) > 8 {
			msg = string(p[8:])
		}
		return status.Errorf(codes.Unavailable, "xdsload-h2: GOAWAY %s", msg)
	case h2FramePushPromise:
		return status.Error(codes.Internal, "xdsload-h2: PUSH_PROMISE, which was not enabled")
	default:
		return nil // PRIORITY and unknown frames are ignored, as HTTP/2 says
	}
}

func (s *h2Stream) readData(length int, flags byte, stream uint32) error {
	if stream != h2StreamID {
		return status.Errorf(codes.Internal, "xdsload-h2: DATA on stream %d", stream)
	}
	if s.in == nil {
		s.in = (*h2Buffers.Get().(*[]byte))[:0]
	}
	start := len(s.in)
	// Room for the whole message at once, once its size is known: a route
	// table of 500 KB grown frame by frame was copied twice over.
	if len(s.in)-s.consumed >= 5 {
		if size := 5 + int(binary.BigEndian.Uint32(s.in[s.consumed+1:])); size <= s.maxRecv && s.consumed+size > cap(s.in) {
			s.in = slices.Grow(s.in, s.consumed+size-len(s.in))
		}
	}
	s.in = growBytes(s.in, length)
	if _, err := io.ReadFull(s.br, s.in[start:start+length]); err != nil {
		return status.Errorf(codes.Unavailable, "xdsload-h2: %v", err)
	}
	if flags&h2FlagPadded != 0 {
		if length < 1 || int(s.in[start]) >= length {
			return status.Error(codes.Internal, "xdsload-h2: bad padding")
		}
		pad := int(s.in[start])
		copy(s.in[start:], s.in[start+1:start+length-pad])
		s.in = s.in[:start+length-pad-1]
	}
	if err := s.creditWindow(length); err != nil {
		return err
	}
	if flags&h2FlagEndStream != 0 {
		s.ended = true
	}
	return nil
}

// growBytes makes room for n more bytes after len(b), keeping b's contents.
func growBytes(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n, max(2*cap(b), len(b)+n, 4<<10))
	copy(nb, b)
	return nb
}

func (s *h2Stream) readHeaders(typ, flags byte, stream uint32, p []byte) error {
	if stream != h2StreamID {
		return status.Errorf(codes.Internal, "xdsload-h2: HEADERS on stream %d", stream)
	}
	if typ == h2FrameHeaders {
		if flags&h2FlagPadded != 0 {
			if len(p) < 1 || int(p[0]) >= len(p) {
				return status.Error(codes.Internal, "xdsload-h2: bad padding")
			}
			p = p[1 : len(p)-int(p[0])]
		}
		if flags&h2FlagPriority != 0 {
			if len(p) < 5 {
				return status.Error(codes.Internal, "xdsload-h2: bad HEADERS priority")
			}
			p = p[5:]
		}
		s.hdrBuf = append(s.hdrBuf[:0], p...)
		s.hdrEnd = flags&h2FlagEndStream != 0
	} else {
		s.hdrBuf = append(s.hdrBuf, p...)
	}
	if flags&h2FlagEndHeaders == 0 {
		return nil
	}
	fields, err := s.hdec.DecodeFull(s.hdrBuf)
	s.hdrBuf = s.hdrBuf[:0]
	if err != nil {
		return status.Errorf(codes.Internal, "xdsload-h2: response headers: %v", err)
	}
	for _, f := range fields {
		switch f.Name {
		case ":status":
			if f.Value != "200" {
				return status.Errorf(codes.Unavailable, "xdsload-h2: HTTP status %s", f.Value)
			}
		case "grpc-status":
			s.status = f.Value
		case "grpc-message":
			s.message = f.Value
		}
	}
	if s.hdrEnd {
		s.ended = true
		if s.status == "" {
			return fmt.Errorf("xdsload-h2: stream ended without grpc-status")
		}
	}
	return nil
}

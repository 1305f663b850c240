package config

import "errors"

var (
	// ErrNoAuth means neither user+password nor a cookie file was configured
	// (or only half of user+password).
	ErrNoAuth = errors.New("no valid bitcoind auth: set both btc_rpc_user and btc_rpc_password, or btc_rpc_cookie")

	// ErrMultipleAuth means a cookie file was configured together with a user
	// or password; rust-teos refuses to guess which one to use.
	ErrMultipleAuth = errors.New("multiple bitcoind auth methods: pick either btc_rpc_user/btc_rpc_password or btc_rpc_cookie")

	// ErrBadNetwork means btc_network is not one of mainnet, testnet, signet, regtest.
	ErrBadNetwork = errors.New("btc_network not recognized, expected mainnet, testnet, signet or regtest")

	// ErrBadRPCConnect means btc_rpc_connect is not a bare host name or IP address.
	ErrBadRPCConnect = errors.New("btc_rpc_connect must be a host name or IP address, without scheme, brackets or port")

	// ErrEmptyBind means api_bind, rpc_bind or internal_api_bind is empty, which would listen on
	// every interface.
	ErrEmptyBind = errors.New("bind address is empty (write 0.0.0.0 or :: to listen on every interface)")

	// ErrZeroPort means a port the tower must listen on or dial is 0.
	ErrZeroPort = errors.New("port must be nonzero")

	// ErrBadPolling means polling_delta is 0 or polling_interval is negative.
	ErrBadPolling = errors.New("bad polling period")

	// ErrBadLimit means api_rate_limit is negative or not a finite number.
	ErrBadLimit = errors.New("api_rate_limit must be a finite number >= 0")

	// ErrBadCookie means the bitcoind cookie file is not "user:password".
	ErrBadCookie = errors.New("malformed cookie file")

	// ErrNoHome means a path starts with ~ but the home directory is unknown.
	ErrNoHome = errors.New("cannot expand ~: home directory unknown")
)

// ErrBadRegistration means registration is neither "open" nor "allowlist".
var ErrBadRegistration = errors.New(`registration must be "open" or "allowlist"`)

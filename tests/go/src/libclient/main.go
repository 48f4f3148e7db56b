// libclient drives Apptainer's library client (Debian's
// golang-github-apptainer-container-library-client-dev, GOPATH mode) against a shubnet node,
// for the integration tests in tests/tests/it/library.rs.
//
//	libclient BASE TOKEN get REF            prints the image JSON (GetImage, arch amd64)
//	libclient BASE TOKEN download PATH TAG OUT   DownloadImage into OUT
//	libclient BASE TOKEN cdownload PATH TAG OUT  ConcurrentDownloadImage into OUT
//	libclient BASE TOKEN upload FILE PATH TAG    UploadImage
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/apptainer/container-library-client/client"
)

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", a...)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 4 {
		fail("usage: libclient BASE TOKEN get|download|cdownload|upload ...")
	}
	base, token, cmd, args := os.Args[1], os.Args[2], os.Args[3], os.Args[4:]
	c, err := client.NewClient(&client.Config{BaseURL: base, AuthToken: token})
	if err != nil {
		fail("NewClient: %v", err)
	}
	ctx := context.Background()
	switch cmd {
	case "get":
		img, err := c.GetImage(ctx, "amd64", args[0])
		if err != nil {
			fail("GetImage: %v", err)
		}
		out, _ := json.Marshal(img)
		fmt.Println(string(out))
	case "download":
		f, err := os.Create(args[2])
		if err != nil {
			fail("create: %v", err)
		}
		defer f.Close()
		if err := c.DownloadImage(ctx, f, "amd64", args[0], args[1], nil); err != nil {
			fail("DownloadImage: %v", err)
		}
	case "cdownload":
		f, err := os.Create(args[2])
		if err != nil {
			fail("create: %v", err)
		}
		defer f.Close()
		spec := &client.Downloader{Concurrency: 4, PartSize: 1 << 20}
		if err := c.ConcurrentDownloadImage(ctx, f, "amd64", args[0], args[1], spec, nil); err != nil {
			fail("ConcurrentDownloadImage: %v", err)
		}
	case "upload":
		f, err := os.Open(args[0])
		if err != nil {
			fail("open: %v", err)
		}
		defer f.Close()
		if _, err := c.UploadImage(ctx, f, args[1], "amd64", []string{args[2]}, "shubnet test", nil); err != nil {
			fail("UploadImage: %v", err)
		}
	default:
		fail("unknown command %q", cmd)
	}
}

package apiclient_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"time"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/apiclient"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/memstore"
)

func Example() {
	// A local API to talk to; in production the base URL is the service's.
	store, _ := memstore.New()
	srv := httptest.NewServer(httpapi.NewHandler(store, httpapi.WithAdminKeys([]string{"secret-admin-key"}),
		httpapi.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))))
	defer srv.Close()

	ctx := context.Background()
	c, err := apiclient.New(srv.URL, apiclient.WithAdminKey("secret-admin-key"))
	if err != nil {
		fmt.Println(err)
		return
	}
	camp, err := c.Create(ctx, "Spring sale", time.Now().Add(-time.Minute))
	if err != nil {
		fmt.Println(err)
		return
	}
	imp := adcount.Impression{CampaignID: camp.ID, UserID: "u-42", AdID: "banner-7"}
	for range 2 {
		counted, err := c.RecordImpression(ctx, imp)
		switch {
		case errors.Is(err, adcount.ErrUnavailable):
			fmt.Println("outcome unknown; the same impression may be sent again")
		case err != nil:
			fmt.Println(err)
		default:
			fmt.Println(counted)
		}
	}
	stats, err := c.Stats(ctx, camp.ID)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("total:", stats.Total)

	_, err = c.Stats(ctx, "no-such-campaign")
	fmt.Println("not found:", errors.Is(err, adcount.ErrNotFound))
	// Output:
	// counted
	// duplicate
	// total: 1
	// not found: true
}

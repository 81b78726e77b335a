package dynamotest

import (
	"encoding/json"
	"net/http"
)

type streamSpec struct {
	StreamEnabled  bool
	StreamViewType string `json:",omitempty"`
}

func (sp *streamSpec) validate() (response, bool) {
	if sp == nil || !sp.StreamEnabled {
		return response{}, true
	}
	switch sp.StreamViewType {
	case viewKeysOnly, viewNewImage, viewOldImage, viewNewAndOldImages:
		return response{}, true
	}
	return validation("1 validation error detected: StreamViewType %q is not one of %s, %s, %s, %s",
		sp.StreamViewType, viewKeysOnly, viewNewImage, viewOldImage, viewNewAndOldImages), false
}

// createTable creates the table in minidyn, and its stream if the request
// asks for one, which minidyn would ignore.
func (s *Server) createTable(body []byte) response {
	var in struct {
		TableName           string
		KeySchema           []keyElem
		StreamSpecification *streamSpec
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return validation("%v", err)
	}
	if res, ok := in.StreamSpecification.validate(); !ok {
		return res
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	res := s.call("CreateTable", body)
	if res.status != http.StatusOK {
		return res
	}
	s.mu.Lock()
	t := &table{keySchema: in.KeySchema}
	if prev := s.tables[in.TableName]; prev != nil {
		t.stream = prev.stream // so that the new stream's label comes later
	}
	s.tables[in.TableName] = t
	if sp := in.StreamSpecification; sp != nil && sp.StreamEnabled {
		s.newStream(in.TableName, t, sp.StreamViewType, s.shards)
	}
	s.mu.Unlock()
	return s.describe(res, "TableDescription", in.TableName)
}

// updateTable hands the update to minidyn and then enables or disables the
// table's stream as its StreamSpecification says.
func (s *Server) updateTable(body []byte) response {
	var in struct {
		TableName           string
		StreamSpecification *streamSpec
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return validation("%v", err)
	}
	sp := in.StreamSpecification
	if res, ok := sp.validate(); !ok {
		return res
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if sp != nil {
		s.mu.Lock()
		t := s.tables[in.TableName]
		var enabled *stream
		if t != nil && t.stream != nil && t.stream.enabled {
			enabled = t.stream
		}
		s.mu.Unlock()
		switch {
		case t == nil:
			// minidyn answers for a table that does not exist.
		case sp.StreamEnabled && enabled != nil:
			return validation("Table already has an enabled stream: %s", enabled.arn)
		case !sp.StreamEnabled && enabled == nil:
			return validation("Table %s has no enabled stream to disable", in.TableName)
		}
	}
	res := s.call("UpdateTable", body)
	if res.status != http.StatusOK {
		return res
	}
	if sp != nil {
		s.mu.Lock()
		if t := s.tables[in.TableName]; t != nil {
			if sp.StreamEnabled {
				s.newStream(in.TableName, t, sp.StreamViewType, s.shards)
			} else {
				t.stream.disable()
			}
		}
		s.mu.Unlock()
	}
	return s.describe(res, "TableDescription", in.TableName)
}

// deleteTable deletes the table in minidyn; its stream stays readable,
// disabled, as DynamoDB keeps it for a day.
func (s *Server) deleteTable(body []byte) response {
	var in struct{ TableName string }
	if err := json.Unmarshal(body, &in); err != nil {
		return validation("%v", err)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	res := s.call("DeleteTable", body)
	if res.status != http.StatusOK {
		return res
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tables[in.TableName]; t != nil && t.stream != nil {
		t.stream.disable()
	}
	// Keep the entry's stream, without a key schema, so that a table of
	// the same name gets a later stream label; writes look the key schema
	// up again.
	if t := s.tables[in.TableName]; t != nil {
		s.tables[in.TableName] = &table{stream: t.stream}
	}
	delete(s.ttl, in.TableName)
	return res
}

func (s *Server) describeTable(body []byte) response {
	var in struct{ TableName string }
	if err := json.Unmarshal(body, &in); err != nil {
		return validation("%v", err)
	}
	return s.describe(s.call("DescribeTable", body), "Table", in.TableName)
}

// describe adds to minidyn's table description, under field of its
// answer, what minidyn leaves out: the ACTIVE status (its tables are
// usable at once) and the table's stream.
func (s *Server) describe(res response, field, tableName string) response {
	var out map[string]map[string]any
	if res.status != http.StatusOK || json.Unmarshal(res.body, &out) != nil || out[field] == nil {
		return res
	}
	desc := out[field]
	if status, _ := desc["TableStatus"].(string); status == "" {
		desc["TableStatus"] = "ACTIVE"
	}
	s.mu.Lock()
	if t := s.tables[tableName]; t != nil && t.stream != nil {
		desc["LatestStreamArn"] = t.stream.arn
		desc["LatestStreamLabel"] = t.stream.label
		spec := streamSpec{StreamEnabled: t.stream.enabled}
		if t.stream.enabled {
			spec.StreamViewType = t.stream.viewType
		}
		desc["StreamSpecification"] = spec
	}
	s.mu.Unlock()
	res = jsonResponse(out)
	return res
}

// keySchema returns the table's key schema, asking minidyn for it the
// first time.
func (s *Server) keySchema(tableName string) []keyElem {
	s.mu.Lock()
	t := s.tables[tableName]
	if t != nil && t.keySchema != nil {
		s.mu.Unlock()
		return t.keySchema
	}
	s.mu.Unlock()
	b, _ := json.Marshal(map[string]string{"TableName": tableName})
	res := s.call("DescribeTable", b)
	var out struct{ Table struct{ KeySchema []keyElem } }
	if res.status != http.StatusOK || json.Unmarshal(res.body, &out) != nil || len(out.Table.KeySchema) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t = s.tables[tableName]; t == nil {
		t = &table{}
		s.tables[tableName] = t
	}
	t.keySchema = out.Table.KeySchema
	return t.keySchema
}

// timeToLive answers the two TTL operations, which minidyn lacks,
// remembering each table's TTL attribute. minidyn never deletes expired
// items, which is the worst case DynamoDB's lazy TTL allows and the one
// the store must count right in.
func (s *Server) timeToLive(op string, body []byte) response {
	var in struct {
		TableName               string
		TimeToLiveSpecification struct {
			AttributeName string
			Enabled       bool
		}
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return validation("%v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if op == "UpdateTimeToLive" {
		if in.TimeToLiveSpecification.Enabled {
			s.ttl[in.TableName] = in.TimeToLiveSpecification.AttributeName
		} else {
			delete(s.ttl, in.TableName)
		}
		return jsonResponse(map[string]any{"TimeToLiveSpecification": in.TimeToLiveSpecification})
	}
	desc := map[string]any{"TimeToLiveStatus": "DISABLED"}
	if attr, ok := s.ttl[in.TableName]; ok {
		desc = map[string]any{"TimeToLiveStatus": "ENABLED", "AttributeName": attr}
	}
	return jsonResponse(map[string]any{"TimeToLiveDescription": desc})
}

package model

// RBACRegexesForTest lets model_test compare rbacRegexes with translate.
var RBACRegexesForTest = rbacRegexes

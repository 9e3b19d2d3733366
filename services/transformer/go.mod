module github.com/boxscore-dev/boxscore/services/transformer

go 1.26

require github.com/boxscore-dev/boxscore/pkg v0.0.0

replace github.com/boxscore-dev/boxscore/pkg => ../../pkg

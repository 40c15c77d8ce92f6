#!/bin/sh
# A test double of OpenWrt's /lib/functions.sh for scripts/check-openwrt.sh:
# config_load and config_get (and config_list_foreach) with UCI's
# semantics for named sections, reading the file $UCI_CONFIG_DIR/NAME in
# UCI's file syntax (config TYPE 'NAME' / option KEY 'VALUE' /
# list KEY 'VALUE'; '...', "..." or bare words; # comments). Values are
# kept in CONFIG_<section>_<option> variables as the real one does.

# One UCI word: strips one level of '...' or "..." quoting.
_uci_word() {
    case "$1" in
        \'*\') v=${1#\'}; v=${v%\'} ;;
        \"*\") v=${1#\"}; v=${v%\"} ;;
        *) v=$1 ;;
    esac
    printf '%s' "$v"
}

# Quotes a value for eval.
_uci_quote() {
    printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"
}

config_load() {
    _file="${UCI_CONFIG_DIR:-/etc/config}/$1"
    [ -f "$_file" ] || return 1
    _section=""
    _anon=0
    while IFS= read -r _line || [ -n "$_line" ]; do
        # Leading blanks go; a line starting with # is a comment.
        _line=$(printf '%s' "$_line" | sed 's/^[[:space:]]*//')
        case "$_line" in '' | '#'*) continue ;; esac
        _kw=${_line%%[[:space:]]*}
        _rest=$(printf '%s' "${_line#"$_kw"}" | sed 's/^[[:space:]]*//')
        case "$_kw" in
            config)
                _type=${_rest%%[[:space:]]*}
                _name=$(printf '%s' "${_rest#"$_type"}" | sed 's/^[[:space:]]*//')
                if [ -z "$_name" ]; then
                    _anon=$((_anon + 1))
                    _section="cfg$_anon"
                else
                    _section=$(_uci_word "$_name")
                fi
                eval "CONFIG_${_section}_TYPE=$(_uci_quote "$(_uci_word "$_type")")"
                ;;
            option | list)
                _key=${_rest%%[[:space:]]*}
                _val=$(_uci_word "$(printf '%s' "${_rest#"$_key"}" | sed 's/^[[:space:]]*//')")
                if [ "$_kw" = option ]; then
                    eval "CONFIG_${_section}_${_key}=$(_uci_quote "$_val")"
                else
                    eval "_n=\${CONFIG_${_section}_${_key}_LENGTH:-0}"
                    _n=$((_n + 1))
                    eval "CONFIG_${_section}_${_key}_LENGTH=$_n"
                    eval "CONFIG_${_section}_${_key}_ITEM$_n=$(_uci_quote "$_val")"
                fi
                ;;
            *) echo "functions.sh double: $_file: cannot parse: $_line" >&2; return 1 ;;
        esac
    done <"$_file"
}

# config_get VAR SECTION OPTION [DEFAULT]
config_get() {
    eval "_v=\${CONFIG_${2}_${3}-}"
    eval "_set=\${CONFIG_${2}_${3}+x}"
    if [ -z "$_set" ]; then
        _v=${4:-}
    fi
    eval "$1=$(_uci_quote "$_v")"
}

# config_get_bool VAR SECTION OPTION [DEFAULT]: 1 or 0 as UCI reads
# 1/yes/on/true and 0/no/off/false.
config_get_bool() {
    config_get _b "$2" "$3" "${4:-}"
    case "$_b" in
        1 | yes | on | true | enabled) _b=1 ;;
        0 | no | off | false | disabled) _b=0 ;;
        *) _b=${4:-0} ;;
    esac
    eval "$1=$_b"
}

# config_list_foreach SECTION OPTION FUNCTION [ARGS...]
config_list_foreach() {
    _s=$1 _o=$2 _f=$3 _len=0 _item=""
    shift 3
    eval "_len=\${CONFIG_${_s}_${_o}_LENGTH:-0}"
    _i=1
    while [ "$_i" -le "$_len" ]; do
        eval "_item=\$CONFIG_${_s}_${_o}_ITEM$_i"
        "$_f" "$_item" "$@"
        _i=$((_i + 1))
    done
}

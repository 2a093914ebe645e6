-- Stand-ins for lsyncd's built-in configurations (default, default.rsync,
-- default.rsyncssh, default.direct) while `clsync import lsyncd` evaluates a
-- configuration: the keys, defaults and key checks of lsyncd 2.2.3 (plus the
-- keys lsyncd 2.3 added, so that its configurations import too), and no
-- behaviour. Their functions only say that they cannot run here; the importer
-- recognises them (and these tables) by identity.

local function standin(name)
	return function()
		error(name .. ' is lsyncd behaviour that does not run while importing', 2)
	end
end

local onlyTrue = function(list)
	local t = { }
	for _, k in ipairs(list) do t[k] = true end
	return t
end

default = {
	_merge = onlyTrue{
		'action', 'checkgauge', 'collect', 'delay', 'init', 'maxDelays',
		'maxProcesses', 'prepare',
	},
	checkgauge = onlyTrue{
		'action', 'checkgauge', 'collect', 'delay', 'exitcodes', 'init',
		'maxDelays', 'maxProcesses', 'onAttrib', 'onCreate', 'onModify',
		'onDelete', 'onStartup', 'onMove', 'prepare', 'source', 'target',
		-- lsyncd 2.3
		'name',
	},
	action = standin('default.action'),
	collect = standin('default.collect'),
	init = standin('default.init'),
	prepare = standin('default.prepare'),
	maxDelays = 1000,
	maxProcesses = 1,
	statusInterval = 10,
	rsyncExitCodes = {
		_merge = false, _verbatim = true,
		[0] = 'ok', [1] = 'die', [2] = 'die', [3] = 'again', [4] = 'die',
		[5] = 'again', [6] = 'again', [10] = 'again', [11] = 'again',
		[12] = 'again', [14] = 'again', [20] = 'again', [21] = 'again',
		[22] = 'again', [23] = 'ok', [24] = 'ok', [25] = 'die', [30] = 'again',
		[35] = 'again', [255] = 'again',
	},
	sshExitCodes = {
		_merge = false, _verbatim = true,
		[0] = 'ok', [255] = 'again',
	},
}

local rsyncKeys = onlyTrue{
	'acls', 'append', 'append_verify', 'archive', 'backup', 'backup_dir',
	'binary', 'bwlimit', 'checksum', 'chown', 'chmod', 'compress',
	'copy_dirlinks', 'copy_links', 'cvs_exclude', 'dry_run', 'executability',
	'existing', 'group', 'groupmap', 'hard_links', 'ignore_times', 'inplace',
	'ipv4', 'ipv6', 'keep_dirlinks', 'links', 'one_file_system',
	'omit_dir_times', 'omit_link_times', 'owner', 'password_file', 'perms',
	'protect_args', 'prune_empty_dirs', 'quiet', 'rsh', 'rsync_path', 'sparse',
	'suffix', 'temp_dir', 'timeout', 'times', 'update', 'usermap', 'verbose',
	'whole_file', 'xattrs', '_extra',
}

local rsyncGauge = {
	onCreate = false, onModify = false, onDelete = false, onStartup = false,
	onMove = false,
	delete = true, exclude = true, excludeFrom = true, filter = true,
	filterFrom = true, target = true,
	rsync = rsyncKeys,
}

default.rsync = {
	checkgauge = rsyncGauge,
	action = standin('default.rsync.action'),
	init = standin('default.rsync.init'),
	prepare = standin('default.rsync.prepare'),
	delete = true,
	exitcodes = default.rsyncExitCodes,
	rsync = {
		binary = '/usr/bin/rsync',
		links = true,
		times = true,
		protect_args = true,
	},
	delay = 15,
}

default.rsyncssh = {
	default.rsync,
	checkgauge = {
		target = false,
		onMove = true,
		host = true,
		targetdir = true,
		sshExitCodes = true,
		rsyncExitCodes = true,
		ssh = onlyTrue{ 'binary', 'identityFile', 'options', 'port', '_extra' },
	},
	action = standin('default.rsyncssh.action'),
	collect = standin('default.rsyncssh.collect'),
	prepare = standin('default.rsyncssh.prepare'),
	maxProcesses = 1,
	onMove = true,
	delay = 15,
	exitcodes = false,
	rsyncExitCodes = default.rsyncExitCodes,
	sshExitCodes = default.sshExitCodes,
	ssh = {
		binary = '/usr/bin/ssh',
		_extra = { },
	},
}

default.direct = {
	checkgauge = {
		rsyncGauge,
		rsyncExitCodes = true,
		onMove = true,
	},
	action = standin('default.direct.action'),
	collect = standin('default.direct.collect'),
	init = default.rsync.init,
	prepare = standin('default.direct.prepare'),
	delay = 1,
	onMove = true,
	rsync = default.rsync.rsync,
	rsyncExitCodes = default.rsyncExitCodes,
	delete = true,
	maxProcesses = 1,
}
